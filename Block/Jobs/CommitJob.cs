using Block.Graph;
using Block.Qapi;

namespace Block.Jobs;

/// <summary>
/// <c>block-commit</c> of an image below the active layer (QEMU's intermediate commit): what the images from the top
/// down to the base hold is copied into the base, then the top's overlay is given the base as its backing node and
/// backing file, and the images between leave the chain.
/// </summary>
/// <remarks>
/// <para>As QEMU 7.2's commit job: the base grows to the top's length first; the top is walked in 512 KiB pieces
/// (<c>COMMIT_BUFFER_SIZE</c>); a piece allocated above the base is read through the top and written into the base as
/// data; progress counts every piece and the speed limit counts copied ones. A failed read or write under any policy
/// but <c>report</c> retries the piece (after <c>block-job-resume</c> for <c>stop</c>). The images being committed
/// are read-only and below the active layer, so guests cannot race the copy.</para>
/// <para>A failure or a cancel leaves the chain as it was: what reached the base is shadowed by the images above it.</para>
/// </remarks>
internal sealed class CommitJob : BlockJob
{
    /// <summary>QEMU's <c>COMMIT_BUFFER_SIZE</c>.</summary>
    public const int BufferBytes = 512 * 1024;

    private readonly BlockNode _top;
    private readonly BlockNode _base;
    private readonly BlockNode _overlay;
    private readonly string? _backingFile;
    private readonly BlockdevOnError _onError;
    private bool _reopenedBase;

    public CommitJob(BlockGraph graph, string id, BlockNode top, BlockNode @base, BlockNode overlay, string? backingFile, BlockdevOnError onError)
        : base(graph, id, "commit")
    {
        _top = top;
        _base = @base;
        _overlay = overlay;
        _backingFile = backingFile;
        _onError = onError;
    }

    /// <summary>Makes the base writable if needed and holds the overlay, the images committed and the base.</summary>
    public async ValueTask SetUpAsync()
    {
        if (_base.ReadOnly)
        {
            await Graph.ReopenAsync(_base, readOnly: false).ConfigureAwait(false);
            _reopenedBase = true;
        }
        try
        {
            Hold(_overlay, "overlay of top", BlockPermissions.None, BlockPermissions.All);
            for (var n = _top; n != null && !ReferenceEquals(n, _base); n = n.Backing?.Node)
                Hold(n, "intermediate node", BlockPermissions.None, BlockPermissions.All & ~BlockPermissions.Resize);
            Hold(_base, "base", BlockPermissions.ConsistentRead | BlockPermissions.Write | BlockPermissions.Resize,
                BlockPermissions.ConsistentRead | BlockPermissions.WriteUnchanged);
        }
        catch
        {
            await ReleaseHeldAsync().ConfigureAwait(false);
            await CleanAsync().ConfigureAwait(false);
            throw;
        }
    }

    protected override async ValueTask RunAsync()
    {
        long length = _top.Length;
        SetLength(length);
        if (_base.Length < length)
            await _base.TruncateAsync(length, PreallocMode.Off).ConfigureAwait(false);

        var buffer = Graph.Buffers.Rent(BufferBytes);
        try
        {
            long n;
            for (long offset = 0; offset < length; offset += n)
            {
                await RateLimitSleepAsync().ConfigureAwait(false);
                if (IsCancelled)
                    break;
                n = Math.Min(BufferBytes, length - offset);
                bool copy = false;
                bool inSource = true;
                try
                {
                    (copy, long bytes) = await _top.IsAllocatedAboveAsync(_base, offset, n).ConfigureAwait(false);
                    n = Math.Max(1, Math.Min(n, bytes));
                    if (copy)
                    {
                        var piece = buffer.Memory[..(int)n];
                        await _top.ReadAsync(offset, piece).ConfigureAwait(false);
                        inSource = false;
                        await _base.WriteAsync(offset, piece).ConfigureAwait(false);
                    }
                }
                catch (BlockException e)
                {
                    if (HandleError(_onError, inSource, e.Errno) == BlockErrorAction.Report)
                        throw;
                    n = 0;
                    continue;
                }
                AddProgress(n);
                if (copy)
                    RateLimitProcessed(n);
            }
        }
        finally
        {
            buffer.Return(clear: false);
        }
    }

    protected override async ValueTask PrepareAsync()
    {
        bool reopenOverlay = _overlay.ReadOnly;
        if (reopenOverlay)
            await Graph.ReopenAsync(_overlay, readOnly: false).ConfigureAwait(false);
        try
        {
            await using (await Graph.BeginDrainAsync().ConfigureAwait(false))
            {
                await _overlay.Impl.ChangeBackingFileAsync(_backingFile ?? _base.Filename, _base.DriverName).ConfigureAwait(false);
                await Graph.SetBackingNodeAsync(_overlay, _base).ConfigureAwait(false);
            }
        }
        finally
        {
            if (reopenOverlay)
                await Graph.ReopenAsync(_overlay, readOnly: true).ConfigureAwait(false);
        }
    }

    protected override async ValueTask CleanAsync()
    {
        if (_reopenedBase && _base.IsOpen)
        {
            _reopenedBase = false;
            await Graph.ReopenAsync(_base, readOnly: true).ConfigureAwait(false);
        }
    }
}
