namespace Block.TestSupport;

/// <summary>
/// A clock that moves only when a test says so: <see cref="Advance"/> moves time and fires, in due order, every timer
/// that has come due, on the caller's thread. Throttling tests run on it, so they assert arithmetic, not timing.
/// </summary>
public sealed class ManualTimeProvider : TimeProvider
{
    private readonly object _lock = new();
    private readonly List<ManualTimer> _timers = [];
    private long _nowTicks = TimeSpan.TicksPerDay;

    /// <inheritdoc />
    public override long TimestampFrequency => TimeSpan.TicksPerSecond;

    /// <inheritdoc />
    public override long GetTimestamp()
    {
        lock (_lock)
            return _nowTicks;
    }

    /// <summary>The time elapsed since the provider was made.</summary>
    public TimeSpan Elapsed => TimeSpan.FromTicks(GetTimestamp() - TimeSpan.TicksPerDay);

    /// <inheritdoc />
    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = new ManualTimer(this, callback, state);
        timer.Change(dueTime, period);
        return timer;
    }

    /// <summary>Moves the clock by <paramref name="delta"/>, firing timers as their times come.</summary>
    public void Advance(TimeSpan delta)
    {
        long target;
        lock (_lock)
            target = _nowTicks + delta.Ticks;
        while (true)
        {
            ManualTimer? next;
            lock (_lock)
            {
                next = _timers.Where(t => t.DueTicks <= target).MinBy(t => t.DueTicks);
                if (next is null)
                {
                    _nowTicks = target;
                    return;
                }
                _nowTicks = Math.Max(_nowTicks, next.DueTicks);
                _timers.Remove(next);
                next.DueTicks = long.MaxValue;
            }
            next.Fire();
        }
    }

    /// <summary>The time of the earliest armed timer, or null.</summary>
    public TimeSpan? NextDue
    {
        get
        {
            lock (_lock)
                return _timers.Count == 0 ? null : TimeSpan.FromTicks(_timers.Min(t => t.DueTicks) - _nowTicks);
        }
    }

    private sealed class ManualTimer(ManualTimeProvider owner, TimerCallback callback, object? state) : ITimer
    {
        public long DueTicks = long.MaxValue;

        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            lock (owner._lock)
            {
                owner._timers.Remove(this);
                if (dueTime == Timeout.InfiniteTimeSpan)
                {
                    DueTicks = long.MaxValue;
                    return true;
                }
                DueTicks = owner._nowTicks + dueTime.Ticks;
                owner._timers.Add(this);
            }
            return true;
        }

        public void Fire() => callback(state);

        public void Dispose() => Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);

        public ValueTask DisposeAsync()
        {
            Dispose();
            return default;
        }
    }
}
