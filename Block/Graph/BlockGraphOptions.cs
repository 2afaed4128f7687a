using Block.Drivers;
using Block.Io;

namespace Block.Graph;

/// <summary>Settings of a <see cref="BlockGraph"/>.</summary>
public sealed record BlockGraphOptions
{
    /// <summary>The drivers; <see cref="DriverRegistry.CreateDefault"/> when null.</summary>
    public DriverRegistry? Drivers { get; init; }

    /// <summary>Buffers for bounce, padding and caches; <see cref="AlignedBufferPool.Shared"/> when null.</summary>
    public AlignedBufferPool? Buffers { get; init; }

    /// <summary>Most threads of the <c>threads</c> engine (QEMU's pool has 64).</summary>
    public int MaxIoThreads { get; init; } = 64;

    /// <summary>Which files named inside images (backing, data, extent files) may be opened. Default: <see cref="ImageReferencePolicy.Allow"/>, as qemu-img.</summary>
    public ImageReferencePolicy ReferencePolicy { get; init; } = ImageReferencePolicy.Allow;

    /// <summary>
    /// Makes the engine for <c>aio=io_uring</c>/<c>native</c>; null for <see cref="IoUringIoEngine"/>. A factory that
    /// throws a <see cref="BlockException"/> makes the graph fall back to <c>threads</c>, as a refusing kernel does.
    /// </summary>
    internal Func<IIoEngine>? IoUringFactory { get; init; }

    /// <summary>The engine file nodes use when their options do not name one.</summary>
    public Qapi.BlockdevAioOptions DefaultAio { get; init; } = Qapi.BlockdevAioOptions.Threads;

    /// <summary>
    /// The clock and timers of throttling and the clock of accounting (latencies, idle time, timed statistics);
    /// <see cref="TimeProvider.System"/> when null (tests pass a manual clock).
    /// </summary>
    public TimeProvider? TimeProvider { get; init; }
}
