using System.Runtime.CompilerServices;
using Block.Drivers.Blkdebug;

namespace Block.Graph;

public sealed partial class BlockNode
{
    /// <summary>
    /// Reports a debug event (QEMU's <c>BLKDBG_EVENT</c>) on this node: the first node in its chain of primary
    /// children that acts on events (a <c>blkdebug</c> node) applies its rules. A format driver reports on its file
    /// child just before the request the event names (<c>l2_update</c> before an L2 write).
    /// </summary>
    /// <remarks>
    /// Free when no blkdebug node is open anywhere in the process: one static load and a completed task, no
    /// allocation (the qcow2 write benchmark's allocated bytes are unchanged). Only with blkdebug open is the chain walked.
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

    private ValueTask DebugEventSlowAsync(BlkdebugEvent debugEvent)
    {
        for (var node = this; node != null; node = node.PrimaryChild?.Node)
        {
            if (node._impl is not { } impl)
                return default;
            if (impl.HandlesDebugEvents)
                return impl.DebugEventAsync(debugEvent);
        }
        return default;
    }
}
