using Block.Options;

namespace Block.Drivers.Blkdebug;

/// <summary>QAPI <c>BlockdevOptionsBlkdebug</c>: a filter that imposes request limits and injects errors.</summary>
public sealed record BlockdevOptionsBlkdebug : BlockdevOptions
{
    /// <summary>Creates options for the <c>blkdebug</c> driver.</summary>
    [System.Diagnostics.CodeAnalysis.SetsRequiredMembers]
    public BlockdevOptionsBlkdebug()
    {
        Driver = "blkdebug";
        Image = BlockdevRef.ToNode(string.Empty);
    }

    /// <summary>The filtered image.</summary>
    public required BlockdevRef Image { get; init; }

    /// <summary>Required request alignment (a power of two), forcing read-modify-write above it.</summary>
    public long? Align { get; init; }

    /// <summary>Largest read/write (QEMU 4.0).</summary>
    public long? MaxTransfer { get; init; }

    /// <summary>Write-zeroes alignment (QEMU 4.0).</summary>
    public long? OptWriteZero { get; init; }

    /// <summary>Largest write-zeroes (QEMU 4.0).</summary>
    public long? MaxWriteZero { get; init; }

    /// <summary>Discard alignment (QEMU 4.0).</summary>
    public long? OptDiscard { get; init; }

    /// <summary>Largest discard (QEMU 4.0).</summary>
    public long? MaxDiscard { get; init; }

    /// <summary>Error injection rules.</summary>
    public IReadOnlyList<BlkdebugInjectErrorOptions> InjectError { get; init; } = [];

    /// <inheritdoc />
    public override IEnumerable<KeyValuePair<string, BlockdevRef>> ChildReferences => [new("image", Image)];
}

/// <summary>QAPI <c>BlkdebugInjectErrorOptions</c>: one error injection rule.</summary>
public sealed record BlkdebugInjectErrorOptions
{
    /// <summary>The trigger: <c>read_aio</c>, <c>write_aio</c>, <c>flush_to_disk</c>, <c>discard</c> or <c>write_zeroes</c>.</summary>
    public required string Event { get; init; }

    /// <summary>The errno to fail with (default EIO).</summary>
    public int Errno { get; init; } = 5;

    /// <summary>Only requests touching this 512-byte sector fail (-1 = any).</summary>
    public long Sector { get; init; } = -1;

    /// <summary>Fire only once.</summary>
    public bool Once { get; init; }

    /// <summary>Accepted for compatibility; errors are always raised on the triggering request.</summary>
    public bool Immediately { get; init; }
}
