using System.Runtime.CompilerServices;
using Block.Drivers;
using Block.Drivers.Blkdebug;

namespace Block.Graph;

public sealed partial class BlockNode
{
    /// <summary>
    /// Reports a debug event (QEMU's <c>BLKDBG_EVENT</c>) on this node: if it acts on events (a <c>blkdebug</c> node)
    /// it applies its rules. A format driver reports on its file child just before the request the event names
    /// (<c>l2_update</c> before an L2 write); the request path reports on the node a request is written to.
    /// </summary>
    /// <remarks>
    /// Free when no blkdebug node is open anywhere in the process: one static load and a completed task, no
    /// allocation (the qcow2 write benchmark's allocated bytes are unchanged). As in QEMU, an event does not pass down
    /// to children: a raw node's own <c>pwritev</c> is not its blkdebug file's, whose breakpoints would otherwise hold a
    /// request before the <c>write_aio</c> that QEMU reports first.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ValueTask DebugEventAsync(BlkdebugEvent debugEvent) =>
        BlkdebugNodeDriver.OpenCount == 0 ? default : DebugEventSlowAsync(debugEvent);

    /// <summary>
    /// True while some blkdebug node is open in the process: a driver whose fast path skips event reporting takes its
    /// reporting path instead.
    /// </summary>
    public static bool DebugEventsEnabled
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => BlkdebugNodeDriver.OpenCount != 0;
    }

    /// <summary>
    /// Sets a breakpoint on the first node from this one down its primary children that acts on debug events (as
    /// qemu-io's <c>break</c>): the next request reporting <paramref name="eventName"/> there is suspended under
    /// <paramref name="tag"/> until <see cref="ResumeDebugRequest"/>. A breakpoint holds one request; it is gone once
    /// it has.
    /// </summary>
    /// <param name="eventName">A <see cref="BlkdebugEventNames"/> wire name.</param>
    /// <param name="tag">The name the suspended request is resumed by.</param>
    /// <param name="suspended">
    /// Called with <paramref name="tag"/> when a request is suspended, on that request's flow (so with its
    /// <see cref="AsyncLocal{T}"/> values): synchronously inside the call that started it when the request had not yet
    /// waited for anything.
    /// </param>
    /// <exception cref="BlockException">ENOENT for an unknown event; ENOTSUP when no node below handles events.</exception>
    public void AddDebugBreakpoint(string eventName, string tag, Action<string>? suspended = null)
    {
        var impl = DebugNode();
        if (!BlkdebugEventNames.TryParse(eventName, out var ev))
            throw new BlockException(Errno.ENOENT, $"No such debug event: {eventName}");
        impl.AddDebugBreakpoint(ev, tag, suspended);
    }

    /// <summary>
    /// Removes every breakpoint tagged <paramref name="tag"/> and resumes the requests suspended under it; returns how
    /// many requests it resumed.
    /// </summary>
    /// <exception cref="BlockException">ENOENT if no breakpoint had the tag (even when requests were resumed, as QEMU
    /// reports it); ENOTSUP when no node below handles events.</exception>
    public int RemoveDebugBreakpoint(string tag) => DebugNode().RemoveDebugBreakpoint(tag);

    /// <summary>Resumes the request suspended most recently under <paramref name="tag"/>.</summary>
    /// <exception cref="BlockException">ENOENT if none is; ENOTSUP when no node below handles events.</exception>
    public void ResumeDebugRequest(string tag) => DebugNode().ResumeDebugRequest(tag);

    /// <summary>True while a request is suspended under <paramref name="tag"/> (false when no node below handles events).</summary>
    public bool IsDebugRequestSuspended(string tag)
    {
        var impl = FindDebugNode();
        return impl != null && impl.IsDebugRequestSuspended(tag);
    }

    private NodeDriver DebugNode() =>
        FindDebugNode() ?? throw new BlockException(Errno.ENOTSUP, "Operation not supported");

    private NodeDriver? FindDebugNode()
    {
        for (var node = this; node != null; node = node.PrimaryChild?.Node)
        {
            if (node._impl is not { } impl)
                return null;
            if (impl.HandlesDebugEvents)
                return impl;
        }
        return null;
    }

    private ValueTask DebugEventSlowAsync(BlkdebugEvent debugEvent) =>
        _impl is { HandlesDebugEvents: true } impl ? impl.DebugEventAsync(debugEvent) : default;
}
