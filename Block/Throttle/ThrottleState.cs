namespace Block.Throttle;

/// <summary>
/// The bucket levels of one throttle group and QEMU's arithmetic over them: leak with time, compute how long a
/// request must wait, and account an admitted request.
/// </summary>
/// <remarks>
/// <para>Each bucket leaks at its average rate. Its capacity is <c>max × burst length</c> when a burst rate is set,
/// else a tenth of a second of the average, so short bursts pass. A bucket with a burst length over one second also
/// keeps a burst level that leaks at the burst rate and may hold a tenth of a second of it: the burst runs at
/// <c>max</c> while the main bucket fills (draining at the average rate all the while), then falls back to the
/// average. Requests are accounted after admission, so one request is admitted whenever its buckets are not over
/// capacity, whatever its size.</para>
/// <para>The state is not thread-safe: its <see cref="ThrottleGroup"/> serialises calls. Times are nanoseconds of any
/// monotonic clock (the group's <see cref="TimeProvider"/>), so tests drive it with explicit times.</para>
/// </remarks>
public sealed class ThrottleState
{
    private const double NsPerSecond = 1e9;
    private readonly double[] _level = new double[6];
    private readonly double[] _burstLevel = new double[6];
    private long _previousLeakNs;

    /// <summary>A state with empty buckets at time <paramref name="nowNs"/>.</summary>
    public ThrottleState(ThrottleConfig config, long nowNs)
    {
        Config = config;
        _previousLeakNs = nowNs;
    }

    /// <summary>The limits.</summary>
    public ThrottleConfig Config { get; }

    /// <summary>The fill level of bucket <paramref name="type"/> (bytes or operations).</summary>
    public double Level(ThrottleBucketType type) => _level[(int)type];

    /// <summary>The burst level of bucket <paramref name="type"/> (only kept with a burst length over 1 s).</summary>
    public double BurstLevel(ThrottleBucketType type) => _burstLevel[(int)type];

    /// <summary>Drains every bucket for the time since the last leak; a clock that went backwards leaks nothing.</summary>
    public void Leak(long nowNs)
    {
        long deltaNs = nowNs - _previousLeakNs;
        if (deltaNs <= 0)
            return;
        _previousLeakNs = nowNs;
        for (int i = 0; i < 6; i++)
        {
            var limit = Config[(ThrottleBucketType)i];
            _level[i] = Math.Max(0, _level[i] - (double)limit.Average * deltaNs / NsPerSecond);
            if (limit.BurstLengthSeconds > 1)
                _burstLevel[i] = Math.Max(0, _burstLevel[i] - (double)limit.Max * deltaNs / NsPerSecond);
        }
    }

    /// <summary>
    /// Nanoseconds a read (or write) must wait before it may be admitted: the longest wait of the total bucket and the
    /// direction's bucket, for bytes and for operations. Call <see cref="Leak"/> first.
    /// </summary>
    public long WaitNs(bool write)
    {
        var direction = write ? ThrottleBucketType.BpsWrite : ThrottleBucketType.BpsRead;
        long wait = Math.Max(BucketWaitNs(ThrottleBucketType.BpsTotal), BucketWaitNs(direction));
        wait = Math.Max(wait, BucketWaitNs(ThrottleBucketType.IopsTotal));
        return Math.Max(wait, BucketWaitNs(direction + 3));
    }

    /// <summary>Adds an admitted request of <paramref name="bytes"/> bytes to its buckets.</summary>
    public void Account(bool write, long bytes)
    {
        double units = 1;
        long iopsSize = Config.IopsSize;
        if (iopsSize > 0 && bytes > iopsSize)
            units = (double)bytes / iopsSize;
        var direction = write ? ThrottleBucketType.BpsWrite : ThrottleBucketType.BpsRead;
        Add(ThrottleBucketType.BpsTotal, bytes);
        Add(direction, bytes);
        Add(ThrottleBucketType.IopsTotal, units);
        Add(direction + 3, units);
    }

    private void Add(ThrottleBucketType type, double amount)
    {
        int i = (int)type;
        _level[i] += amount;
        if (Config[type].BurstLengthSeconds > 1)
            _burstLevel[i] += amount;
    }

    private long BucketWaitNs(ThrottleBucketType type)
    {
        var limit = Config[type];
        if (limit.Average == 0)
            return 0;
        double capacity = limit.Max == 0 ? limit.Average / 10.0 : (double)limit.Max * limit.BurstLengthSeconds;
        double extra = _level[(int)type] - capacity;
        if (extra > 0)
            return (long)(extra * NsPerSecond / limit.Average);
        if (limit.BurstLengthSeconds > 1)
        {
            extra = _burstLevel[(int)type] - limit.Max / 10.0;
            if (extra > 0)
                return (long)(extra * NsPerSecond / limit.Max);
        }
        return 0;
    }
}
