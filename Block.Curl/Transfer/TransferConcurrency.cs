namespace Block.Curl.Transfer;

/// <summary>
/// How many ranges a curl node keeps in flight: as few as give the link's full throughput, between one and the
/// node's slots (QEMU's eight), found by trying.
/// </summary>
/// <remarks>
/// QEMU always lets eight ranges run. On a fast link that only costs: on loopback to nginx, eight 2.25 MiB ranges at
/// once made a 512 MiB convert 0.89× qemu-img's single range at a time, while one range at a time was 1.35×
/// (bench/README.md, curl), because each extra range's bytes leave the CPU's cache and nothing waits on latency. On a
/// slow-to-answer server, ranges in parallel are what hides the latency. The two cannot be told apart from one
/// transfer's timing (a range's time to its first byte grows with the ranges beside it, whatever the link), so the
/// limit is found by measuring: throughput (bytes per second while any range is in flight) over windows of
/// <see cref="WindowTransfers"/> transfers in which the limit held a read back. From QEMU's eight, the limit halves
/// while throughput stays within 5 % of the last accepted window's; it returns to the last accepted limit when
/// throughput falls. After <see cref="HoldWindows"/> windows it tries again, the other way from its last try (up from
/// one, down from the maximum), so a link that changes either way is followed. Doubling is kept only for a 25 % gain (a loaded two-core machine's windows vary by about that much). Windows in which no read waited for the limit say nothing about it and
/// are not counted. Not thread-safe: the node calls it under its lock.
/// </remarks>
internal sealed class TransferConcurrency
{
    /// <summary>Transfers per measurement window.</summary>
    public const int WindowTransfers = 16;

    /// <summary>Windows at a settled limit before it is tried again.</summary>
    public const int HoldWindows = 8;

    private readonly int _maximum;
    private int _inFlight;
    private long _busySince;
    private long _windowBusyTicks;
    private long _windowBytes;
    private int _windowTransfers;
    private bool _windowLimited;
    private int _acceptedLimit;
    private double _acceptedThroughput = double.NaN;
    // Which way the limit is being tried: -1 halves it, +1 doubles it.
    private int _direction = -1;
    private int _held;

    /// <summary>A policy allowing at most <paramref name="maximum"/> ranges in flight, and that many at first.</summary>
    public TransferConcurrency(int maximum)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maximum, 1);
        _maximum = maximum;
        Limit = _acceptedLimit = maximum;
    }

    /// <summary>How many ranges may be in flight now.</summary>
    public int Limit { get; private set; }

    /// <summary>The limit the measurements settled on; <see cref="Limit"/> differs from it only while another is tried.</summary>
    public int SettledLimit => _acceptedLimit;

    /// <summary>How many ranges are in flight.</summary>
    public int InFlight => _inFlight;

    /// <summary>
    /// Takes a slot for a transfer starting at <paramref name="now"/> if the limit allows. A window counts when the
    /// limit was reached in it: a read waited, or a start filled the last slot the limit gives.
    /// </summary>
    public bool TryStart(long now)
    {
        if (_inFlight >= Limit)
        {
            _windowLimited = true;
            return false;
        }
        if (_inFlight++ == 0)
            _busySince = now;
        if (_inFlight == Limit)
            _windowLimited = true;
        return true;
    }

    /// <summary>A transfer ended at <paramref name="now"/>, having fetched <paramref name="bytes"/> (0 if it failed).</summary>
    public void Finished(long now, long bytes)
    {
        if (--_inFlight == 0)
            _windowBusyTicks += now - _busySince;
        _windowBytes += bytes;
        if (++_windowTransfers < WindowTransfers)
            return;
        long busy = _windowBusyTicks;
        if (_inFlight > 0)
        {
            busy += now - _busySince;
            _busySince = now;
        }
        double throughput = _windowBytes / (double)Math.Max(busy, 1);
        bool limited = _windowLimited;
        _windowTransfers = 0;
        _windowBytes = 0;
        _windowBusyTicks = 0;
        _windowLimited = false;
        if (limited)
            Adjust(throughput);
    }

    private void Adjust(double throughput)
    {
        if (double.IsNaN(_acceptedThroughput))
        {
            Accept(throughput);
            Probe();
            return;
        }
        if (Limit == _acceptedLimit)
        {
            // Settled: refresh the reference, and try again after a while.
            _acceptedThroughput = throughput;
            if (++_held >= HoldWindows)
            {
                _held = 0;
                _direction = Limit == 1 ? 1 : Limit == _maximum ? -1 : -_direction;
                Probe();
            }
            return;
        }
        bool better = Limit < _acceptedLimit ? throughput >= _acceptedThroughput * 0.95 : throughput >= _acceptedThroughput * 1.25;
        if (better)
        {
            Accept(throughput);
            Probe();
        }
        else
        {
            Limit = _acceptedLimit;
            _held = 0;
        }
    }

    private void Accept(double throughput)
    {
        _acceptedLimit = Limit;
        _acceptedThroughput = throughput;
        _held = 0;
    }

    private void Probe()
    {
        int next = _direction < 0 ? Math.Max(1, Limit / 2) : Math.Min(_maximum, Limit * 2);
        Limit = next;
    }
}
