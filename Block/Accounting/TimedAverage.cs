namespace Block.Accounting;

/// <summary>
/// Minimum, maximum and average of samples over a sliding interval, kept as two overlapping windows so that a
/// reading always covers between two thirds and four thirds of the interval (QEMU's <c>TimedAverage</c> semantics).
/// </summary>
internal sealed class TimedAverage
{
    private readonly long _periodTicks;
    private readonly Window[] _windows = [new(), new()];

    public TimedAverage(long intervalSeconds, long nowTicks, long ticksPerSecond)
    {
        _periodTicks = intervalSeconds * ticksPerSecond * 4 / 3;
        _windows[0].Expires = nowTicks + _periodTicks;
        _windows[1].Expires = nowTicks + _periodTicks / 2;
        _windows[0].Started = nowTicks;
        _windows[1].Started = nowTicks - _periodTicks / 2;
    }

    public void Add(long value, long nowTicks)
    {
        foreach (var w in _windows)
        {
            Refresh(w, nowTicks);
            if (w.Count == 0 || value < w.Min)
                w.Min = value;
            if (w.Count == 0 || value > w.Max)
                w.Max = value;
            w.Sum += value;
            w.Count++;
        }
    }

    /// <summary>The window that expires first: min, max, average, sum, and ticks elapsed in it.</summary>
    public (long Min, long Max, long Avg, long Sum, long ElapsedTicks) Read(long nowTicks)
    {
        foreach (var w in _windows)
            Refresh(w, nowTicks);
        var current = _windows[0].Expires < _windows[1].Expires ? _windows[0] : _windows[1];
        long avg = current.Count == 0 ? 0 : current.Sum / current.Count;
        return (current.Count == 0 ? 0 : current.Min, current.Max, avg, current.Sum, Math.Max(1, nowTicks - current.Started));
    }

    private void Refresh(Window w, long nowTicks)
    {
        if (nowTicks < w.Expires)
            return;
        long periods = (nowTicks - w.Expires) / _periodTicks + 1;
        w.Expires += periods * _periodTicks;
        w.Started = w.Expires - _periodTicks;
        w.Min = w.Max = w.Sum = w.Count = 0;
    }

    private sealed class Window
    {
        public long Min;
        public long Max;
        public long Sum;
        public long Count;
        public long Expires;
        public long Started;
    }
}
