namespace Block.Graph;

public sealed partial class BlockNode
{
    private int _forcedTracking;

    /// <summary>
    /// Makes every request on this node register with the request tracker, so that a job's copy-on-read can serialise
    /// against guest writes (QEMU's serialising requests). Call inside a drained section, so that no request that
    /// started untracked is still in flight.
    /// </summary>
    internal void BeginForcedTracking()
    {
        _forcedTracking++;
        _tracker ??= new RequestTracker();
    }

    /// <summary>Ends <see cref="BeginForcedTracking"/>; call inside a drained section (no tracked request may be in flight).</summary>
    internal void EndForcedTracking()
    {
        if (--_forcedTracking == 0 && _alignMask == 0)
            _tracker = null;
    }

    /// <summary>
    /// Registers a serialising request over <c>[start, end)</c>: it waits for earlier overlapping requests, and later
    /// ones wait for it until <see cref="EndSerialised"/>. Needs <see cref="BeginForcedTracking"/>.
    /// </summary>
    internal ValueTask<TrackedRequest> SerialiseAsync(long start, long end) =>
        (_tracker ?? throw new InvalidOperationException("request tracking is off")).BeginAsync(start, end, serialising: true);

    /// <summary>Ends a request of <see cref="SerialiseAsync"/>.</summary>
    internal void EndSerialised(TrackedRequest request) => _tracker!.End(request);

    /// <summary>
    /// A copy-on-read fill inside a serialised range (<see cref="SerialiseAsync"/>): written without registering again,
    /// and, as in QEMU, not marked in dirty bitmaps and not checked against the write threshold (the content does
    /// not change). An all-zero fill becomes a write-zeroes request without unmap, as QEMU's.
    /// </summary>
    internal async ValueTask WriteCopyOnReadAsync(long offset, Memory<byte> data)
    {
        int token = BeginRequest();
        try
        {
            if (data.Span.IndexOfAnyExcept((byte)0) < 0)
                await WriteZeroesCoreAsync(Impl, offset, data.Length, RequestFlags.None).ConfigureAwait(false);
            else
                await WriteMaybePaddedAsync(Impl, offset, data, RequestFlags.WriteUnchanged).ConfigureAwait(false);
            _dirtySinceFlush = 1;
        }
        finally
        {
            EndRequest(token);
        }
    }
}
