using Block.Options;

namespace Block.Drivers.Null;

/// <summary>
/// <c>null-co</c> and <c>null-aio</c>: a device of a given size that stores nothing. Reads return zeroes with
/// <c>read-zeroes=on</c> (otherwise the buffer is untouched), writes are dropped, and every request can be given a
/// latency. <c>null-co</c> completes on the caller's thread; <c>null-aio</c> completes asynchronously, as a device
/// with a completion queue does. Useful for measuring the block layer's own overhead.
/// </summary>
public sealed class NullDriver : BlockDriver
{
    /// <summary>Creates the driver under <paramref name="name"/> (<c>null-co</c> or <c>null-aio</c>).</summary>
    public NullDriver(string name)
    {
        Name = name;
    }

    /// <inheritdoc />
    public override string Name { get; }

    /// <inheritdoc />
    public override BlockDriverKind Kind => BlockDriverKind.Protocol;

    /// <inheritdoc />
    public override IReadOnlyList<string> ProtocolPrefixes => [Name];

    /// <inheritdoc />
    public override BlockdevOptions OptionsFromFilename(string filename)
    {
        if (filename != Name + "://")
            throw new BlockOptionsException($"The only allowed filename for this driver is '{Name}://'");
        return new BlockdevOptionsNull { Driver = Name };
    }

    /// <inheritdoc />
    public override BlockdevOptions ParseOptions(OptionsReader reader, BlockdevOptionsParser parser)
    {
        string? filename = reader.String("filename");
        if (filename != null && filename != Name + "://")
            throw new BlockOptionsException($"The only allowed filename for this driver is '{Name}://'");
        return new BlockdevOptionsNull
        {
            Driver = Name,
            Size = (long?)reader.Size("size"),
            LatencyNs = reader.UInt64("latency-ns"),
            ReadZeroes = reader.Bool("read-zeroes"),
        };
    }

    /// <inheritdoc />
    public override ValueTask<NodeDriver> OpenAsync(NodeOpenContext context, CancellationToken cancellationToken)
    {
        var options = (BlockdevOptionsNull)context.Options;
        long size = options.Size ?? (1L << 30);
        if (size < 0)
            throw new BlockOptionsException("Parameter 'size' must be non-negative");
        ulong latency = options.LatencyNs ?? 0;
        if (latency > long.MaxValue)
            throw new BlockOptionsException("latency-ns is invalid");
        return new ValueTask<NodeDriver>(new NullNodeDriver(context.Node, Name, size, (long)latency,
            options.ReadZeroes ?? false, asynchronous: Name == "null-aio"));
    }
}
