namespace Block.Graph;

/// <summary>
/// The request shapes a driver accepts. The generic request path turns any request into requests that fit:
/// it pads to <see cref="RequestAlignment"/> (with read-modify-write for writes) and splits at the maxima.
/// </summary>
public readonly record struct BlockLimits
{
    /// <summary>Limits for a driver that takes anything.</summary>
    public BlockLimits()
    {
    }

    /// <summary>Offsets and lengths must be multiples of this (a power of two; 1 = byte granular).</summary>
    public int RequestAlignment { get; init; } = 1;

    /// <summary>Largest read or write in bytes (0 = no limit beyond 2 GiB).</summary>
    public int MaxTransfer { get; init; }

    /// <summary>Preferred transfer size in bytes (0 = none), for callers that choose their request size.</summary>
    public int OptimalTransfer { get; init; }

    /// <summary>Write-zeroes requests are most efficient in multiples of this (0 = <see cref="RequestAlignment"/>).</summary>
    public int WriteZeroesAlignment { get; init; }

    /// <summary>Largest write-zeroes request (0 = no limit).</summary>
    public long MaxWriteZeroes { get; init; }

    /// <summary>Discards smaller than or misaligned to this are partly dropped (0 = <see cref="RequestAlignment"/>).</summary>
    public int DiscardAlignment { get; init; }

    /// <summary>Largest discard request (0 = no limit).</summary>
    public long MaxDiscard { get; init; }

    /// <summary>Buffers should be aligned to this for zero-copy I/O (bounce buffers are used otherwise).</summary>
    public int MemoryAlignment { get; init; } = 1;

    /// <summary>Most segments in one vectored request.</summary>
    public int MaxIov { get; init; } = 1024;
}
