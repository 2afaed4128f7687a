namespace Block.Throttle;

/// <summary>
/// The limits of a throttle group: six buckets (total, read and write, for bytes and operations) and the size that
/// counts as one operation.
/// </summary>
/// <remarks>
/// The rules are QEMU's (<c>throttle_is_valid</c>), with its messages, so that <c>block_set_io_throttle</c> refuses
/// what QEMU 7.2 refuses with the same text. A configuration with every average at 0 turns throttling off.
/// </remarks>
public sealed record ThrottleConfig
{
    /// <summary>The largest rate or burst rate (10^15, QEMU's <c>THROTTLE_VALUE_MAX</c>).</summary>
    public const long ValueMax = 1_000_000_000_000_000;

    /// <summary>Bytes per second, reads and writes together.</summary>
    public ThrottleLimit BpsTotal { get; init; } = ThrottleLimit.None;

    /// <summary>Bytes per second read.</summary>
    public ThrottleLimit BpsRead { get; init; } = ThrottleLimit.None;

    /// <summary>Bytes per second written.</summary>
    public ThrottleLimit BpsWrite { get; init; } = ThrottleLimit.None;

    /// <summary>Operations per second.</summary>
    public ThrottleLimit IopsTotal { get; init; } = ThrottleLimit.None;

    /// <summary>Read operations per second.</summary>
    public ThrottleLimit IopsRead { get; init; } = ThrottleLimit.None;

    /// <summary>Write operations per second.</summary>
    public ThrottleLimit IopsWrite { get; init; } = ThrottleLimit.None;

    /// <summary>Bytes that count as one operation for larger requests (0: every request is one operation).</summary>
    public long IopsSize { get; init; }

    /// <summary>No limits.</summary>
    public static ThrottleConfig Unlimited { get; } = new();

    /// <summary>The limits of bucket <paramref name="type"/>.</summary>
    public ThrottleLimit this[ThrottleBucketType type] => type switch
    {
        ThrottleBucketType.BpsTotal => BpsTotal,
        ThrottleBucketType.BpsRead => BpsRead,
        ThrottleBucketType.BpsWrite => BpsWrite,
        ThrottleBucketType.IopsTotal => IopsTotal,
        ThrottleBucketType.IopsRead => IopsRead,
        _ => IopsWrite,
    };

    /// <summary>True if any bucket has an average rate, i.e. the configuration limits something.</summary>
    public bool IsEnabled =>
        BpsTotal.Average > 0 || BpsRead.Average > 0 || BpsWrite.Average > 0 || IopsTotal.Average > 0 || IopsRead.Average > 0 || IopsWrite.Average > 0;

    /// <summary>Checks the configuration as QEMU does.</summary>
    /// <exception cref="BlockOptionsException">The first rule broken, in QEMU's words.</exception>
    public void Validate()
    {
        if (Conflicts(BpsTotal.Average, BpsRead.Average, BpsWrite.Average) || Conflicts(IopsTotal.Average, IopsRead.Average, IopsWrite.Average)
            || Conflicts(BpsTotal.Max, BpsRead.Max, BpsWrite.Max) || Conflicts(IopsTotal.Max, IopsRead.Max, IopsWrite.Max))
            throw new BlockOptionsException("bps/iops/max total values and read/write values cannot be used at the same time");
        if (IopsSize != 0 && IopsTotal.Average == 0 && IopsRead.Average == 0 && IopsWrite.Average == 0)
            throw new BlockOptionsException("iops size requires an iops value to be set");
        for (var type = ThrottleBucketType.BpsTotal; type <= ThrottleBucketType.IopsWrite; type++)
        {
            var limit = this[type];
            if (limit.Average < 0 || limit.Max < 0 || limit.Average > ValueMax || limit.Max > ValueMax)
                throw new BlockOptionsException($"bps/iops/max values must be within [0, {ValueMax}]");
            // QEMU keeps burst lengths unsigned: a negative one from QMP is a huge length.
            ulong length = (ulong)limit.BurstLengthSeconds;
            if (length == 0)
                throw new BlockOptionsException("the burst length cannot be 0");
            if (length > 1 && limit.Max == 0)
                throw new BlockOptionsException("burst length set without burst rate");
            if (limit.Max != 0 && length > (ulong)(ValueMax / limit.Max))
                throw new BlockOptionsException("burst length too high for this burst rate");
            if (limit.Max != 0 && limit.Average == 0)
                throw new BlockOptionsException("bps_max/iops_max require corresponding bps/iops values");
            if (limit.Max != 0 && limit.Max < limit.Average)
                throw new BlockOptionsException("bps_max/iops_max cannot be lower than bps/iops");
        }
    }

    private static bool Conflicts(long total, long read, long write) => total != 0 && (read != 0 || write != 0);
}
