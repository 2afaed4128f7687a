namespace Block.Throttle;

/// <summary>
/// A named budget of I/O shared by its members (backends): one <see cref="ThrottleState"/>, served round-robin so
/// that members with queued requests take turns.
/// </summary>
/// <remarks>
/// <para>Per direction (read, write) the group keeps a token, the member whose turn it is, and whether a timer is
/// armed. A request passes at once when no timer is armed, its member has nothing queued and the token's buckets need
/// no wait; otherwise it queues and the token member's timer is armed for when the buckets allow. After every
/// admission the next member with queued requests (walking round from the token) gets the turn: at once if the
/// buckets allow, preferring the admitting member's own queue as QEMU does, else by its timer.</para>
/// <para>No thread waits: a queued request is a task completed by the timer callback. Timers come from the group's
/// <see cref="TimeProvider"/>, which tests replace with a manual clock.</para>
/// </remarks>
public sealed class ThrottleGroup
{
    private readonly object _lock = new();
    private readonly List<ThrottleGroupMember> _members = [];
    private readonly ThrottleGroupMember?[] _token = new ThrottleGroupMember?[2];
    private readonly bool[] _timerArmed = new bool[2];
    private ThrottleState _state;

    /// <summary>A group named <paramref name="name"/> with <paramref name="config"/>, timed by <paramref name="time"/>.</summary>
    public ThrottleGroup(string name, ThrottleConfig config, TimeProvider? time = null)
    {
        Name = name;
        Time = time ?? TimeProvider.System;
        _state = new ThrottleState(config, NowNs());
    }

    /// <summary>The group's name (QAPI <c>group</c>).</summary>
    public string Name { get; }

    /// <summary>The clock and timers.</summary>
    public TimeProvider Time { get; }

    /// <summary>The limits.</summary>
    public ThrottleConfig Config
    {
        get
        {
            lock (_lock)
                return _state.Config;
        }
    }

    /// <summary>The members, in round-robin order.</summary>
    public IReadOnlyList<ThrottleGroupMember> Members
    {
        get
        {
            lock (_lock)
                return [.. _members];
        }
    }

    /// <summary>The bucket state (for tests and diagnostics; read it only while no request runs).</summary>
    public ThrottleState State => _state;

    /// <summary>
    /// Replaces the limits of the whole group: the buckets start empty and armed timers are cancelled; queued requests
    /// are then served under the new limits.
    /// </summary>
    /// <exception cref="BlockOptionsException">The configuration breaks one of QEMU's rules.</exception>
    public void Configure(ThrottleConfig config)
    {
        config.Validate();
        lock (_lock)
        {
            _state = new ThrottleState(config, NowNs());
            for (int d = 0; d < 2; d++)
            {
                _timerArmed[d] = false;
                foreach (var m in _members)
                    m.CancelTimer(d);
                if (_token[d] is { } token)
                    ScheduleNext(token, d);
            }
        }
    }

    /// <summary>Adds a member (a backend's throttling handle) at the end of the round.</summary>
    public ThrottleGroupMember Join(string? description = null)
    {
        var member = new ThrottleGroupMember(this, description ?? string.Empty);
        lock (_lock)
        {
            _members.Add(member);
            for (int d = 0; d < 2; d++)
                _token[d] ??= member;
        }
        return member;
    }

    /// <summary>Removes <paramref name="member"/>; its queued requests pass at once.</summary>
    internal void Leave(ThrottleGroupMember member)
    {
        lock (_lock)
        {
            int index = _members.IndexOf(member);
            if (index < 0)
                return;
            for (int d = 0; d < 2; d++)
            {
                if (member.TimerArmed(d))
                    _timerArmed[d] = false;
                member.CancelTimer(d);
                member.ReleaseAll(d);
            }
            _members.RemoveAt(index);
            for (int d = 0; d < 2; d++)
            {
                if (_token[d] == member)
                    _token[d] = _members.Count == 0 ? null : _members[index % _members.Count];
                if (_token[d] is { } token && !_timerArmed[d])
                    ScheduleNext(token, d);
            }
        }
        member.DisposeTimers();
    }

    /// <summary>True while <paramref name="member"/> belongs to the group.</summary>
    internal bool Contains(ThrottleGroupMember member)
    {
        lock (_lock)
            return _members.Contains(member);
    }

    /// <summary>Admits a request now (true, accounted) or queues it on its member (false).</summary>
    internal bool TryAdmit(ThrottleGroupMember member, int direction, long bytes, out Task? queued)
    {
        lock (_lock)
        {
            var token = NextToken(member, direction);
            bool mustWait = ScheduleTimer(token, direction);
            if (!mustWait && member.Pending(direction) == 0)
            {
                _state.Account(direction == 1, bytes);
                ScheduleNext(member, direction);
                queued = null;
                return true;
            }
            queued = member.Enqueue(direction, bytes);
            return false;
        }
    }

    /// <summary>A member's timer fired: its first queued request passes, or the next member gets the turn.</summary>
    internal void OnTimer(ThrottleGroupMember member, int direction)
    {
        lock (_lock)
        {
            if (!member.TimerArmed(direction) || !_members.Contains(member))
                return;
            member.ClearTimer(direction);
            _timerArmed[direction] = false;
            if (!Wake(member, direction))
                ScheduleNext(member, direction);
        }
    }

    /// <summary>
    /// Lets every queued request of <paramref name="member"/> pass (a drain), each accounted in the buckets as QEMU
    /// accounts a request the drain wakes: the I/O runs, so the budget after the drain knows of it.
    /// </summary>
    internal void ReleaseQueued(ThrottleGroupMember member)
    {
        lock (_lock)
        {
            for (int d = 0; d < 2; d++)
            {
                while (member.TryDequeue(d, out long bytes, out var waiter))
                {
                    _state.Account(d == 1, bytes);
                    waiter.TrySetResult();
                }
            }
        }
    }

    private long NowNs() => (long)(Time.GetTimestamp() * (1e9 / Time.TimestampFrequency));

    /// <summary>The member whose turn it is: the next one after the token with queued requests, else <paramref name="member"/>.</summary>
    private ThrottleGroupMember NextToken(ThrottleGroupMember member, int direction)
    {
        var start = _token[direction] ?? member;
        int startIndex = _members.IndexOf(start);
        if (startIndex < 0)
            return member;
        for (int step = 1; step <= _members.Count; step++)
        {
            var candidate = _members[(startIndex + step) % _members.Count];
            if (candidate.Pending(direction) > 0)
                return candidate;
        }
        return member;
    }

    /// <summary>True if a request must wait; arms <paramref name="token"/>'s timer when the buckets ask for a wait.</summary>
    private bool ScheduleTimer(ThrottleGroupMember token, int direction)
    {
        if (_timerArmed[direction])
            return true;
        long now = NowNs();
        _state.Leak(now);
        long waitNs = _state.WaitNs(direction == 1);
        if (waitNs == 0)
            return false;
        token.ArmTimer(direction, waitNs);
        _token[direction] = token;
        _timerArmed[direction] = true;
        return true;
    }

    /// <summary>Passes the first queued request of <paramref name="member"/>, if any, and gives the next turn.</summary>
    private bool Wake(ThrottleGroupMember member, int direction)
    {
        if (!member.TryDequeue(direction, out long bytes, out var waiter))
            return false;
        _state.Account(direction == 1, bytes);
        waiter.TrySetResult();
        ScheduleNext(member, direction);
        return true;
    }

    /// <summary>After an admission: serve the next member with queued requests now, or arm its timer.</summary>
    private void ScheduleNext(ThrottleGroupMember member, int direction)
    {
        while (true)
        {
            var token = NextToken(member, direction);
            if (token.Pending(direction) == 0)
                return;
            if (ScheduleTimer(token, direction))
                return;
            // The buckets allow a request now: the admitting member's own queue goes first, else the token's.
            var next = member.Pending(direction) > 0 ? member : token;
            _token[direction] = next;
            if (!next.TryDequeue(direction, out long bytes, out var waiter))
                return;
            _state.Account(direction == 1, bytes);
            waiter.TrySetResult();
            member = next;
        }
    }
}
