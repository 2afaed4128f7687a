using Block.Options;

namespace Block.Drivers.Null;

/// <summary>QAPI <c>BlockdevOptionsNull</c> (drivers <c>null-co</c> and <c>null-aio</c>), with QEMU 4.2's <c>read-zeroes</c>.</summary>
public sealed record BlockdevOptionsNull : BlockdevOptions
{
    /// <summary>Creates options for <c>null-co</c>.</summary>
    [System.Diagnostics.CodeAnalysis.SetsRequiredMembers]
    public BlockdevOptionsNull()
    {
        Driver = "null-co";
    }

    /// <summary>Size of the device in bytes (default 1 GiB).</summary>
    public long? Size { get; init; }

    /// <summary>Latency of every request in nanoseconds (default 0).</summary>
    public ulong? LatencyNs { get; init; }

    /// <summary>Reads return zeroes (default: the buffer is left as it is, as QEMU's null driver does).</summary>
    public bool? ReadZeroes { get; init; }
}
