namespace Block.Throttle;

/// <summary>
/// One user of a <see cref="ThrottleGroup"/> (a backend): its queues of requests waiting for budget, one per
/// direction, and a timer per direction that the group arms when it is this member's turn.
/// </summary>
/// <remarks>
/// An admitted request costs no allocation (<see cref="AdmitAsync"/> returns a completed task); a queued one costs a
/// task completion source, the price of waiting without a thread. The group's lock guards the queues and timer flags.
/// </remarks>
public sealed class ThrottleGroupMember : IDisposable
{
    private readonly Queue<(long Bytes, TaskCompletionSource Waiter)>[] _queues = [new(), new()];
    private readonly ITimer?[] _timers = new ITimer?[2];
    private readonly bool[] _timerArmed = new bool[2];

    internal ThrottleGroupMember(ThrottleGroup group, string description)
    {
        Group = group;
        Description = description;
    }

    /// <summary>The group.</summary>
    public ThrottleGroup Group { get; }

    /// <summary>Who the member is (a backend's name), for diagnostics.</summary>
    public string Description { get; }

    /// <summary>
    /// Completes when a read (<paramref name="write"/> false) or write of <paramref name="bytes"/> bytes may run, and
    /// accounts it in the group's buckets.
    /// </summary>
    public ValueTask AdmitAsync(bool write, long bytes) =>
        Group.TryAdmit(this, write ? 1 : 0, bytes, out var queued) ? default : new ValueTask(queued!);

    /// <summary>Requests queued in one direction (0 read, 1 write).</summary>
    public int QueuedRequests(bool write) => Pending(write ? 1 : 0);

    /// <summary>Leaves the group; queued requests pass at once.</summary>
    public void Dispose() => Group.Leave(this);

    /// <summary>Lets every queued request pass now (a drain).</summary>
    public void ReleaseQueued() => Group.ReleaseQueued(this);

    internal int Pending(int direction) => _queues[direction].Count;

    internal Task Enqueue(int direction, long bytes)
    {
        var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _queues[direction].Enqueue((bytes, waiter));
        return waiter.Task;
    }

    internal bool TryDequeue(int direction, out long bytes, out TaskCompletionSource waiter)
    {
        if (_queues[direction].TryDequeue(out var entry))
        {
            bytes = entry.Bytes;
            waiter = entry.Waiter;
            return true;
        }
        bytes = 0;
        waiter = null!;
        return false;
    }

    internal void ReleaseAll(int direction)
    {
        while (_queues[direction].TryDequeue(out var entry))
            entry.Waiter.TrySetResult();
    }

    internal bool TimerArmed(int direction) => _timerArmed[direction];

    internal void ArmTimer(int direction, long waitNs)
    {
        _timerArmed[direction] = true;
        var due = TimeSpan.FromTicks(Math.Max(1, (waitNs + 99) / 100));
        if (_timers[direction] is { } timer)
            timer.Change(due, Timeout.InfiniteTimeSpan);
        else
            _timers[direction] = Group.Time.CreateTimer(static s => ((TimerState)s!).Fire(), new TimerState(this, direction), due, Timeout.InfiniteTimeSpan);
    }

    internal void ClearTimer(int direction) => _timerArmed[direction] = false;

    internal void CancelTimer(int direction)
    {
        _timerArmed[direction] = false;
        _timers[direction]?.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    internal void DisposeTimers()
    {
        foreach (var timer in _timers)
            timer?.Dispose();
    }

    private sealed class TimerState(ThrottleGroupMember member, int direction)
    {
        public void Fire() => member.Group.OnTimer(member, direction);
    }
}
