namespace Block.Throttle;

/// <summary>The six buckets of a throttle state, in QEMU's order.</summary>
public enum ThrottleBucketType
{
    /// <summary>Bytes per second, reads and writes together.</summary>
    BpsTotal,

    /// <summary>Bytes per second read.</summary>
    BpsRead,

    /// <summary>Bytes per second written.</summary>
    BpsWrite,

    /// <summary>Operations per second, reads and writes together.</summary>
    IopsTotal,

    /// <summary>Read operations per second.</summary>
    IopsRead,

    /// <summary>Write operations per second.</summary>
    IopsWrite,
}
