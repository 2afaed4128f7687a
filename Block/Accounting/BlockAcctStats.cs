using Block.Qapi;

namespace Block.Accounting;

/// <summary>
/// I/O accounting of one backend, reported as the schema's <see cref="BlockDeviceStats"/>: completed, failed and
/// invalid operations, bytes, total latency, merged requests, idle time, and timed statistics over configured
/// intervals.
/// </summary>
/// <remarks>
/// A request is accounted once, at the device-facing backend: the nodes below count only their highest write
/// offset, as in QEMU. Counters are updated with interlocked adds (a few nanoseconds per request); timed
/// statistics, when intervals are configured, take a lock. Times come from a <see cref="TimeProvider"/> (the graph's),
/// so a test with a manual clock reads exact latencies, idle times and interval windows.
/// </remarks>
/// <param name="time">The clock; <see cref="TimeProvider.System"/> when null.</param>
public sealed class BlockAcctStats(TimeProvider? time = null)
{
    private const int Types = 3;
    private readonly long[] _bytes = new long[Types];
    private readonly long[] _ops = new long[Types];
    private readonly long[] _failed = new long[Types];
    private readonly long[] _invalid = new long[Types];
    private readonly long[] _totalNs = new long[Types];
    private readonly long[] _merged = new long[Types];
    private readonly List<(long Interval, TimedAverage[] Latency)> _intervals = [];
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private long _lastAccessTicks;
    private int _accessed;

    /// <summary>Whether invalid requests update the idle time (QEMU's default: yes).</summary>
    public bool AccountInvalid { get; set; } = true;

    /// <summary>Whether failed requests count towards latency and idle time (QEMU's default: yes).</summary>
    public bool AccountFailed { get; set; } = true;

    /// <summary>The clock's current timestamp: where a request's latency starts (<see cref="Done"/>, <see cref="Failed"/>).</summary>
    public long GetTimestamp() => _time.GetTimestamp();

    /// <summary>Adds a timed-statistics interval of <paramref name="seconds"/> seconds.</summary>
    public void AddInterval(long seconds)
    {
        if (seconds < 1 || seconds > uint.MaxValue)
            throw new BlockOptionsException($"Invalid interval length: {seconds}");
        long now = _time.GetTimestamp();
        lock (_intervals)
            _intervals.Add((seconds, [new TimedAverage(seconds, now, _time.TimestampFrequency), new TimedAverage(seconds, now, _time.TimestampFrequency),
                new TimedAverage(seconds, now, _time.TimestampFrequency)]));
    }

    /// <summary>A request of <paramref name="bytes"/> bytes that started at <paramref name="startTicks"/> completed.</summary>
    public void Done(BlockAcctType type, long bytes, long startTicks)
    {
        long now = _time.GetTimestamp();
        int t = (int)type;
        Interlocked.Add(ref _bytes[t], bytes);
        Interlocked.Increment(ref _ops[t]);
        long ns = TicksToNs(now - startTicks);
        Interlocked.Add(ref _totalNs[t], ns);
        Touch(now);
        if (_intervals.Count != 0)
            AddLatency(t, ns, now);
    }

    /// <summary>A request that started at <paramref name="startTicks"/> failed.</summary>
    public void Failed(BlockAcctType type, long startTicks)
    {
        long now = _time.GetTimestamp();
        int t = (int)type;
        Interlocked.Increment(ref _failed[t]);
        if (!AccountFailed)
            return;
        long ns = TicksToNs(now - startTicks);
        Interlocked.Add(ref _totalNs[t], ns);
        Touch(now);
        if (_intervals.Count != 0)
            AddLatency(t, ns, now);
    }

    /// <summary>A request was rejected before submission (out of range).</summary>
    public void Invalid(BlockAcctType type)
    {
        Interlocked.Increment(ref _invalid[(int)type]);
        if (AccountInvalid)
            Touch(_time.GetTimestamp());
    }

    /// <summary><paramref name="count"/> requests were merged into others by the device.</summary>
    public void Merged(BlockAcctType type, long count) => Interlocked.Add(ref _merged[(int)type], count);

    /// <summary>The counters as the schema reports them.</summary>
    public BlockDeviceStats Snapshot(long wrHighestOffset)
    {
        long now = _time.GetTimestamp();
        long last = Volatile.Read(ref _lastAccessTicks);
        var timed = new List<BlockDeviceTimedStats>();
        lock (_intervals)
        {
            foreach (var (interval, latency) in _intervals)
            {
                var rd = latency[0].Read(now);
                var wr = latency[1].Read(now);
                var fl = latency[2].Read(now);
                timed.Add(new BlockDeviceTimedStats
                {
                    IntervalLength = interval,
                    MinRdLatencyNs = rd.Min,
                    MaxRdLatencyNs = rd.Max,
                    AvgRdLatencyNs = rd.Avg,
                    MinWrLatencyNs = wr.Min,
                    MaxWrLatencyNs = wr.Max,
                    AvgWrLatencyNs = wr.Avg,
                    MinFlushLatencyNs = fl.Min,
                    MaxFlushLatencyNs = fl.Max,
                    AvgFlushLatencyNs = fl.Avg,
                    AvgRdQueueDepth = (double)rd.Sum / TicksToNs(rd.ElapsedTicks),
                    AvgWrQueueDepth = (double)wr.Sum / TicksToNs(wr.ElapsedTicks),
                });
            }
        }
        return new BlockDeviceStats
        {
            RdBytes = Volatile.Read(ref _bytes[0]),
            WrBytes = Volatile.Read(ref _bytes[1]),
            RdOperations = Volatile.Read(ref _ops[0]),
            WrOperations = Volatile.Read(ref _ops[1]),
            FlushOperations = Volatile.Read(ref _ops[2]),
            RdTotalTimeNs = Volatile.Read(ref _totalNs[0]),
            WrTotalTimeNs = Volatile.Read(ref _totalNs[1]),
            FlushTotalTimeNs = Volatile.Read(ref _totalNs[2]),
            WrHighestOffset = wrHighestOffset,
            RdMerged = Volatile.Read(ref _merged[0]),
            WrMerged = Volatile.Read(ref _merged[1]),
            IdleTimeNs = Volatile.Read(ref _accessed) == 0 ? null : TicksToNs(now - last),
            FailedRdOperations = Volatile.Read(ref _failed[0]),
            FailedWrOperations = Volatile.Read(ref _failed[1]),
            FailedFlushOperations = Volatile.Read(ref _failed[2]),
            InvalidRdOperations = Volatile.Read(ref _invalid[0]),
            InvalidWrOperations = Volatile.Read(ref _invalid[1]),
            InvalidFlushOperations = Volatile.Read(ref _invalid[2]),
            AccountInvalid = AccountInvalid,
            AccountFailed = AccountFailed,
            TimedStats = timed,
        };
    }

    private void AddLatency(int type, long ns, long now)
    {
        lock (_intervals)
        {
            foreach (var (_, latency) in _intervals)
                latency[type].Add(ns, now);
        }
    }

    private void Touch(long now)
    {
        Volatile.Write(ref _lastAccessTicks, now);
        Volatile.Write(ref _accessed, 1);
    }

    private long TicksToNs(long ticks) => (long)(ticks * (1e9 / _time.TimestampFrequency));
}
