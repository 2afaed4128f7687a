namespace Block.Jobs;

/// <summary>
/// A block job's speed limit as QEMU 7.2 computes it (<c>include/qemu/ratelimit.h</c>): time is cut into 100 ms
/// slices, each allowing <c>speed / 10</c> bytes (at least one); a job copies a chunk, reports its bytes, and sleeps
/// for the delay this returns before the next one.
/// </summary>
/// <remarks>
/// The computation takes the time as an argument so that it is a pure function of its inputs: tests feed it times and
/// check delays exactly, with no clock and no sleeping. Because bytes are reported after they are copied, the first
/// chunk always runs at full speed and a long chunk is paid for afterwards (at 1 MiB/s a 512 KiB stream chunk is
/// followed by a 500 ms sleep), which is how QEMU's jobs hold their limit.
/// </remarks>
public sealed class JobRateLimit
{
    /// <summary>The slice length QEMU's jobs use (<c>BLOCK_JOB_SLICE_TIME</c>): 100 ms, in nanoseconds.</summary>
    public const long SliceNs = 100_000_000;

    private readonly object _lock = new();
    private long _sliceQuota;
    private long _sliceStartNs;
    private long _sliceEndNs;
    private long _dispatched;

    /// <summary>The limit in bytes per second; 0 for none.</summary>
    public long Speed { get; private set; }

    /// <summary>Sets the limit (QMP <c>speed</c>, <c>block-job-set-speed</c>); 0 turns it off.</summary>
    /// <exception cref="BlockOptionsException">A negative speed, with QEMU 7.2's text.</exception>
    public void SetSpeed(long bytesPerSecond)
    {
        if (bytesPerSecond < 0)
            throw new BlockOptionsException("Parameter 'speed' expects a non-negative value");
        lock (_lock)
        {
            Speed = bytesPerSecond;
            _sliceQuota = bytesPerSecond == 0 ? 0 : Math.Max(1, (long)((double)bytesPerSecond * SliceNs / 1_000_000_000));
        }
    }

    /// <summary>
    /// Accounts <paramref name="bytes"/> dispatched at <paramref name="nowNs"/> and returns how long to wait before
    /// dispatching more (0: go on). With <paramref name="bytes"/> 0 it only asks.
    /// </summary>
    /// <param name="nowNs">The time on any monotonic clock, in nanoseconds.</param>
    /// <param name="bytes">Bytes just dispatched.</param>
    public long CalculateDelay(long nowNs, long bytes)
    {
        lock (_lock)
        {
            if (_sliceQuota == 0)
                return 0;
            if (_sliceEndNs < nowNs)
            {
                // The previous (possibly extended) slice is over: start accounting afresh.
                _sliceStartNs = nowNs;
                _sliceEndNs = nowNs + SliceNs;
                _dispatched = 0;
            }
            _dispatched += bytes;
            if (_dispatched < _sliceQuota)
                return 0;
            // Over quota: the slice stretches over as many slices as the bytes need, and the job waits for its end.
            double slices = (double)_dispatched / _sliceQuota;
            _sliceEndNs = _sliceStartNs + (long)(slices * SliceNs);
            return _sliceEndNs - nowNs;
        }
    }
}
