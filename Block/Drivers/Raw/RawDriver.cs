using Block.Graph;
using Block.Options;
using Block.Qapi;

namespace Block.Drivers.Raw;

/// <summary>The <c>raw</c> format: the file's bytes are the disk's bytes, optionally a window of them.</summary>
public sealed class RawDriver : BlockDriver
{
    /// <inheritdoc />
    public override string Name => "raw";

    /// <inheritdoc />
    public override BlockDriverKind Kind => BlockDriverKind.Format;

    /// <inheritdoc />
    public override int Probe(ReadOnlySpan<byte> header, string? filename) => 1;

    /// <inheritdoc />
    public override bool CanCreate => true;

    /// <inheritdoc />
    public override IReadOnlyList<CreateOptionDescriptor> CreateOptions { get; } =
    [
        new("size", CreateOptionType.Size, "Virtual disk size"),
    ];

    /// <inheritdoc />
    public override BlockdevOptions ParseOptions(OptionsReader reader, BlockdevOptionsParser parser) => new BlockdevOptionsRaw
    {
        File = reader.RequiredRef("file", parser),
        Offset = reader.Int("offset"),
        Size = reader.Int("size"),
    };

    /// <inheritdoc />
    public override async ValueTask<NodeDriver> OpenAsync(NodeOpenContext context, CancellationToken cancellationToken)
    {
        var options = (BlockdevOptionsRaw)context.Options;
        long offset = options.Offset ?? 0;
        if (offset < 0)
            throw new BlockOptionsException("offset cannot be negative");
        if (options.Size < 0)
            throw new BlockOptionsException("size cannot be negative");
        var file = await context.OpenChildAsync("file", options.File, ChildRole.Filtered | ChildRole.Primary, cancellationToken).ConfigureAwait(false);
        long fileLength = file.Node.Length;
        if (options.Size is { } size && offset > fileLength - size)
        {
            throw new BlockOptionsException($"The sum of offset ({offset}) and size ({size}) has to be smaller or equal to the " +
                $" actual size of the containing file ({fileLength})");
        }
        if (offset > fileLength)
            throw new BlockOptionsException($"Offset ({offset}) cannot be greater than size of the containing file ({fileLength})");
        return new RawNodeDriver(context.Node, file.Node, offset, options.Size, options.Probed, context.Graph.Drivers);
    }

    /// <inheritdoc />
    public override bool CanMeasure => true;

    /// <inheritdoc />
    /// <remarks>Every byte of the disk is in the file, allocated or not: both sizes are the disk's length in whole
    /// sectors.</remarks>
    public override ValueTask<BlockMeasureInfo> MeasureAsync(ImageCreateRequest options, BlockNode? input, CancellationToken cancellationToken)
    {
        ulong size = input != null ? (ulong)input.Length : (options.Size ?? 0);
        long bytes = unchecked((long)((size + 511) & ~511UL));
        return new(new BlockMeasureInfo { Required = bytes, FullyAllocated = bytes });
    }

    /// <inheritdoc />
    public override ValueTask CreateAsync(ImageCreateRequest request, CancellationToken cancellationToken)
    {
        var protocol = request.Graph.Drivers.ProtocolFor(request.Filename);
        if (!protocol.CanCreate)
            throw new BlockException(Errno.ENOTSUP, $"Protocol driver '{protocol.Name}' does not support image creation");
        // Disks are whole sectors: the file is created with the size rounded up to 512 bytes, as QEMU does.
        var options = new Dictionary<string, string>(request.Options);
        if (request.Size is { } size)
            options["size"] = ((size + 511) / 512 * 512).ToString(System.Globalization.CultureInfo.InvariantCulture);
        return protocol.CreateAsync(request.ForDriver(request.Filename, options), cancellationToken);
    }
}
