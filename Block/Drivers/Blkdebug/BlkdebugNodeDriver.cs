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
/// <c>once</c> rule is then deleted.
/// </remarks>
internal sealed class BlkdebugNodeDriver : NodeDriver
{
    private static int s_openCount;

    private readonly BlockNode _image;
    private readonly BlockLimits _limits;
    private readonly List<BlkdebugRule>[] _rules;
    private readonly List<BlkdebugRule> _active = [];
    private readonly Lock _lock = new();
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
        if (rules.Count == 0)
            return default;
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
        }
        return default;
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
