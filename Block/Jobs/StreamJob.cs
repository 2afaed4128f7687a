using Block.Graph;
using Block.Qapi;

namespace Block.Jobs;

/// <summary>
/// <c>block-stream</c>: copies into an image what the images between it and a base hold, while guests keep using it,
/// then drops those images from the chain (QEMU's stream job).
/// </summary>
/// <remarks>
/// <para>The image is walked in 512 KiB chunks, QEMU's <c>STREAM_CHUNK</c>: a chunk the image holds is skipped, one
/// that an image above the base holds is copied up, the rest is left to the base. Progress counts every chunk; the
/// speed limit counts copied ones only. Each copy registers a serialising request on the image: guest writes to the
/// range wait for it and it waits for them, and it fills only what the image still lacks, so a guest write is never
/// overwritten with older data from below.</para>
/// <para>At the end, drained: the recorded backing file becomes the base's name (or none), the base becomes the
/// backing node, and the images between leave the chain (closed unless something else holds them). A failure or a
/// cancel leaves the chain as it was; what was copied up reads the same as before.</para>
/// </remarks>
internal sealed class StreamJob : BlockJob
{
    /// <summary>QEMU's <c>STREAM_CHUNK</c>.</summary>
    public const int ChunkBytes = 512 * 1024;

    private readonly BlockNode _top;
    private readonly BlockNode? _base;
    private readonly string? _baseName;
    private readonly BlockdevOnError _onError;
    private bool _reopened;
    private bool _tracking;

    public StreamJob(BlockGraph graph, string id, BlockNode top, BlockNode? @base, string? baseName, BlockdevOnError onError)
        : base(graph, id, "stream")
    {
        _top = top;
        _base = @base;
        _baseName = baseName;
        _onError = onError;
    }

    /// <summary>Makes the image writable if needed, holds the chain, and turns on request tracking on the image.</summary>
    public async ValueTask SetUpAsync()
    {
        if (_top.ReadOnly)
        {
            await Graph.ReopenAsync(_top, readOnly: false).ConfigureAwait(false);
            _reopened = true;
        }
        try
        {
            Hold(_top, "stream", BlockPermissions.ConsistentRead | BlockPermissions.WriteUnchanged, BlockPermissions.All);
            for (var n = _top.Backing?.Node; n != null && !ReferenceEquals(n, _base); n = n.Backing?.Node)
            {
                Hold(n, "intermediate node", BlockPermissions.None, BlockPermissions.ConsistentRead | BlockPermissions.WriteUnchanged);
            }
            await using (await Graph.BeginDrainAsync().ConfigureAwait(false))
            {
                _top.BeginForcedTracking();
                _tracking = true;
            }
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
        // Nothing between the image and the base: done at once, with no progress length (as QEMU).
        var backing = _top.Backing?.Node;
        if (backing is null || ReferenceEquals(backing, _base))
            return;
        long length = _top.Length;
        SetLength(length);

        var buffer = Graph.Buffers.Rent(ChunkBytes);
        BlockException? firstError = null;
        try
        {
            long n;
            for (long offset = 0; offset < length; offset += n)
            {
                await RateLimitSleepAsync().ConfigureAwait(false);
                if (IsCancelled)
                    break;

                bool copy = false;
                BlockException? error = null;
                n = Math.Min(ChunkBytes, length - offset);
                try
                {
                    var status = await _top.GetBlockStatusAsync(offset, n, wantZero: false).ConfigureAwait(false);
                    n = Math.Max(1, Math.Min(n, status.Bytes));
                    if (!status.Has(BlockStatusFlags.Allocated))
                    {
                        (copy, long bytes) = await backing.IsAllocatedAboveAsync(_base, offset, n).ConfigureAwait(false);
                        n = Math.Max(1, Math.Min(n, bytes));
                    }
                    if (copy)
                        await CopyOnReadAsync(backing, offset, n, buffer.Memory).ConfigureAwait(false);
                }
                catch (BlockException e)
                {
                    error = e;
                }
                if (error != null)
                {
                    var action = HandleError(_onError, isRead: true, error.Errno);
                    if (action == BlockErrorAction.Stop)
                    {
                        n = 0;
                        continue;
                    }
                    firstError ??= error;
                    if (action == BlockErrorAction.Report)
                        break;
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
        if (firstError != null)
            throw firstError;
    }

    /// <summary>Fills what the image lacks in <c>[offset, offset + bytes)</c> from its backing chain, serialised against guest writes.</summary>
    private async ValueTask CopyOnReadAsync(BlockNode backing, long offset, long bytes, Memory<byte> buffer)
    {
        long end = offset + bytes;
        var tracked = await _top.SerialiseAsync(offset, end).ConfigureAwait(false);
        try
        {
            for (long pos = offset; pos < end;)
            {
                var status = await _top.GetBlockStatusAsync(pos, end - pos, wantZero: false).ConfigureAwait(false);
                long run = Math.Max(1, Math.Min(end - pos, status.Bytes));
                if (!status.Has(BlockStatusFlags.Allocated))
                {
                    run = Math.Min(run, buffer.Length);
                    var piece = buffer[..(int)run];
                    long inBacking = Math.Clamp(backing.Length - pos, 0, run);
                    if (inBacking > 0)
                        await backing.ReadAsync(pos, piece[..(int)inBacking]).ConfigureAwait(false);
                    piece.Span[(int)inBacking..].Clear();
                    await _top.WriteCopyOnReadAsync(pos, piece).ConfigureAwait(false);
                }
                pos += run;
            }
        }
        finally
        {
            _top.EndSerialised(tracked);
        }
    }

    protected override async ValueTask PrepareAsync()
    {
        if (_top.Backing is null || ReferenceEquals(_top.Backing.Node, _base))
            return;
        await using (await Graph.BeginDrainAsync().ConfigureAwait(false))
        {
            await _top.Impl.ChangeBackingFileAsync(_base is null ? null : _baseName, _base?.DriverName).ConfigureAwait(false);
            await Graph.SetBackingNodeAsync(_top, _base).ConfigureAwait(false);
        }
    }

    protected override async ValueTask CleanAsync()
    {
        if (_tracking)
        {
            await using (await Graph.BeginDrainAsync().ConfigureAwait(false))
                _top.EndForcedTracking();
            _tracking = false;
        }
        if (_reopened && _top.IsOpen)
        {
            _reopened = false;
            await Graph.ReopenAsync(_top, readOnly: true).ConfigureAwait(false);
        }
    }
}
