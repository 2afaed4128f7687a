using Block.Graph;
using Block.Io;
using Block.Qapi;

namespace Block.Drivers.Blkdebug;

/// <summary>
/// One blkdebug node: passes requests to its image, failing those that an active inject-error rule covers; debug
/// events reported by the drivers above activate rules and change the node's state.
/// </summary>
/// <remarks>
/// QEMU's semantics, checked against qemu-io 7.2: the state starts at 1; an event runs its rules whose state is 0 or the
/// current one, in definition order; the first inject-error rule it runs replaces the active list, and a set-state rule
/// takes effect once all the event's rules have run. A request fails with the first active rule that covers it; a
/// <c>once</c> rule is then deleted. A breakpoint (qemu-io's <c>break</c>) holds the next request that reports its event,
/// in any state, until resumed; later breakpoints are looked at first, and <c>resume</c> picks the request held last
/// under a tag (both as qemu-io 7.2 prints them).
/// </remarks>
internal sealed class BlkdebugNodeDriver : NodeDriver
{
    private static int s_openCount;

    private readonly BlockNode _image;
    private readonly BlockLimits _limits;
    private readonly List<BlkdebugRule>[] _rules;
    private readonly List<BlkdebugRule> _active = [];
    private readonly Lock _lock = new();
    // Newest first, as QEMU: of two breakpoints on one event the later is reported first, and resume picks the
    // request suspended last under a tag.
    private readonly List<Breakpoint> _breakpoints = [];
    private readonly List<Suspension> _suspended = [];
    private int _breakpointCount;
    private long _state = 1;
    private int _disposed;

    public BlkdebugNodeDriver(BlockNode node, BlockNode image, BlockLimits limits,
        IReadOnlyList<BlkdebugInjectErrorOptions> inject, IReadOnlyList<BlkdebugSetStateOptions> setState)
        : base(node)
    {
        _image = image;
        _limits = limits;
        _rules = new List<BlkdebugRule>[BlkdebugEventNames.All.Count];
        for (int i = 0; i < _rules.Length; i++)
            _rules[i] = [];
        foreach (var o in inject)
        {
            BlkdebugEventNames.TryParse(o.Event, out var ev);
            _rules[(int)ev].Add(new BlkdebugRule(o));
        }
        foreach (var o in setState)
        {
            BlkdebugEventNames.TryParse(o.Event, out var ev);
            _rules[(int)ev].Add(new BlkdebugRule(o));
        }
        Interlocked.Increment(ref s_openCount);
    }

    /// <summary>How many blkdebug nodes are open in the process; while none is, reporting an event costs nothing.</summary>
    public static int OpenCount => Volatile.Read(ref s_openCount);

    public override BlockLimits Limits => _limits;

    public override RequestFlags SupportedWriteFlags => RequestFlags.Fua & _image.Impl.SupportedWriteFlags;

    public override RequestFlags SupportedZeroFlags =>
        (RequestFlags.Fua | RequestFlags.MayUnmap | RequestFlags.NoFallback) & _image.Impl.SupportedZeroFlags;

    public override long Length => _image.Length;

    public override bool HandlesDebugEvents => true;

    public override ValueTask ReadAsync(long offset, IoVector buffers, RequestFlags flags) =>
        Check(BlkdebugIoType.Read, offset, buffers.Length) ?? _image.ReadAsync(offset, buffers, flags);

    public override ValueTask WriteAsync(long offset, IoVector buffers, RequestFlags flags) =>
        Check(BlkdebugIoType.Write, offset, buffers.Length) ?? _image.WriteAsync(offset, buffers, flags);

    public override ValueTask WriteZeroesAsync(long offset, long length, RequestFlags flags) =>
        Check(BlkdebugIoType.WriteZeroes, offset, length) ?? _image.WriteZeroesAsync(offset, length, flags);

    public override ValueTask DiscardAsync(long offset, long length) =>
        Check(BlkdebugIoType.Discard, offset, length) ?? _image.DiscardAsync(offset, length);

    public override ValueTask FlushToDiskAsync() => Check(BlkdebugIoType.Flush, 0, 0) ?? default;

    public override ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length, bool wantZero)
    {
        if (Check(BlkdebugIoType.BlockStatus, offset, length) is { } failed)
            return FailStatusAsync(failed);
        return new(new BlockStatus(BlockStatusFlags.Raw | BlockStatusFlags.OffsetValid, length, offset, _image));
    }

    public override ValueTask TruncateAsync(long length, PreallocMode preallocation, bool exact) =>
        _image.TruncateAsync(length, preallocation, exact);

    public override ValueTask DebugEventAsync(BlkdebugEvent debugEvent)
    {
        var rules = _rules[(int)debugEvent];
        if (rules.Count == 0 && Volatile.Read(ref _breakpointCount) == 0)
            return default;
        SuspendedRequest? request = null;
        List<Breakpoint>? hit = null;
        lock (_lock)
        {
            long newState = _state;
            bool injected = false;
            foreach (var rule in rules)
            {
                if (rule.State != 0 && rule.State != _state)
                    continue;
                if (rule.Inject is null)
                {
                    newState = rule.NewState;
                    continue;
                }
                if (!injected)
                {
                    _active.Clear();
                    injected = true;
                }
                _active.Add(rule);
            }
            _state = newState;
            // A breakpoint holds one request, in any state, and is gone once it has.
            for (int i = 0; i < _breakpoints.Count; i++)
            {
                var bp = _breakpoints[i];
                if (bp.Event != debugEvent)
                    continue;
                _breakpoints.RemoveAt(i--);
                Volatile.Write(ref _breakpointCount, _breakpoints.Count);
                request ??= new SuspendedRequest();
                request.Holds++;
                _suspended.Insert(0, new Suspension(bp.Tag, request));
                (hit ??= []).Add(bp);
            }
        }
        if (request is null)
            return default;
        foreach (var bp in hit!)
            bp.Suspended?.Invoke(bp.Tag);
        return new ValueTask(request.Resumed.Task);
    }

    public override void AddDebugBreakpoint(BlkdebugEvent debugEvent, string tag, Action<string>? suspended)
    {
        lock (_lock)
        {
            _breakpoints.Insert(0, new Breakpoint(debugEvent, tag, suspended));
            Volatile.Write(ref _breakpointCount, _breakpoints.Count);
        }
    }

    public override int RemoveDebugBreakpoint(string tag)
    {
        var resumed = new List<SuspendedRequest>();
        bool removed;
        lock (_lock)
        {
            for (int i = 0; i < _suspended.Count; i++)
            {
                if (_suspended[i].Tag == tag)
                {
                    resumed.Add(_suspended[i].Request);
                    _suspended.RemoveAt(i--);
                }
            }
            removed = _breakpoints.RemoveAll(b => b.Tag == tag) > 0;
            Volatile.Write(ref _breakpointCount, _breakpoints.Count);
        }
        // Outside the lock: a resumed request runs on in this call until it next waits, as QEMU re-enters it.
        foreach (var r in resumed)
            r.Release();
        if (!removed)
            throw new BlockException(Errno.ENOENT, $"No breakpoint tagged '{tag}'");
        return resumed.Count;
    }

    public override void ResumeDebugRequest(string tag)
    {
        SuspendedRequest? request = null;
        lock (_lock)
        {
            int i = _suspended.FindIndex(x => x.Tag == tag);
            if (i >= 0)
            {
                request = _suspended[i].Request;
                _suspended.RemoveAt(i);
            }
        }
        if (request is null)
            throw new BlockException(Errno.ENOENT, $"No request suspended under '{tag}'");
        request.Release();
    }

    public override bool IsDebugRequestSuspended(string tag)
    {
        lock (_lock)
            return _suspended.Exists(x => x.Tag == tag);
    }

    public override ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
            Interlocked.Decrement(ref s_openCount);
        return base.DisposeAsync();
    }

    private ValueTask? Check(BlkdebugIoType ioType, long offset, long bytes)
    {
        if (_active.Count == 0)
            return null;
        BlkdebugRule? hit = null;
        lock (_lock)
        {
            foreach (var rule in _active)
            {
                if (rule.Covers(ioType, offset, bytes))
                {
                    hit = rule;
                    break;
                }
            }
            if (hit is null || hit.Errno == 0)
                return null;
            if (hit.Inject!.Once)
            {
                _active.Remove(hit);
                foreach (var list in _rules)
                    list.Remove(hit);
            }
        }
        var error = new BlockException(hit.Errno, $"blkdebug: injected error: {ErrnoText.Describe(hit.Errno)}");
        return hit.Inject.Immediately ? ValueTask.FromException(error) : FailAfterYieldAsync(error);
    }

    private sealed record Breakpoint(BlkdebugEvent Event, string Tag, Action<string>? Suspended);

    private sealed record Suspension(string Tag, SuspendedRequest Request);

    /// <summary>A request held at an event by one or more breakpoints; it goes on once each has been resumed.</summary>
    private sealed class SuspendedRequest
    {
        // Continuations run synchronously: resume goes on with the request inside the resuming call, as QEMU does.
        public TaskCompletionSource Resumed { get; } = new();

        public int Holds;

        public void Release()
        {
            if (Interlocked.Decrement(ref Holds) == 0)
                Resumed.SetResult();
        }
    }

    private static async ValueTask FailAfterYieldAsync(BlockException error)
    {
        await Task.Yield();
        throw error;
    }

    private static async ValueTask<BlockStatus> FailStatusAsync(ValueTask failed)
    {
        await failed.ConfigureAwait(false);
        throw new InvalidOperationException("unreachable: an injected error always fails");
    }
}
