using System.Collections.Concurrent;
using Block.Bitmaps;
using Block.Graph;
using Block.Qapi;

namespace Block.Jobs;

/// <summary>
/// The mirror engine (QEMU's mirror job): copies a source node to a target while guests keep writing to the source,
/// re-copying what they dirty, sends <c>BLOCK_JOB_READY</c> once the target is in sync, and on
/// <c>block-job-complete</c> moves the source's users (or the <c>replaces</c> node's) onto the target. It runs
/// <c>drive-mirror</c>, <c>blockdev-mirror</c> and the active <c>block-commit</c> (type <c>commit</c>, target = base).
/// </summary>
/// <remarks>
/// <para>An anonymous dirty bitmap on the source, at the job's granularity, records guest writes from the start. The
/// initial pass marks what the sync mode copies (for full, what the chain holds; for top and for a commit, what lies
/// above the base; for none, nothing). Each iteration takes the next dirty run, up to one chunk
/// (<c>max(buf-size / 16, granularity)</c>, 1 MiB by default), clears its bits first, then reads the source and writes
/// the target (zero runs as write-zeroes), with up to 16 copies and <c>buf-size</c> bytes in flight as in QEMU.
/// Every <see cref="WritebackBytes"/> copied, the target is told to start writing to disk (a hint QEMU does not give):
/// the flush at READY then finds little left to write. A guest
/// write landing during a copy marks its range again, so the range is copied again later; two copies of one range
/// never run at once. A failed copy marks its range again and follows the side's error policy.</para>
/// <para>Progress: <c>offset</c> counts bytes copied; <c>len</c> = offset + dirty + in flight, so it moves with guest
/// writes. With nothing dirty and nothing in flight the target is flushed and the job is ready; it keeps copying
/// (napping 100 ms when idle) until completed or cancelled. Completion and a cancel after READY (which converges
/// without switching over, so the target is a consistent copy of that moment) copy the last dirty ranges in a drained
/// section, where no guest write can race them.</para>
/// </remarks>
internal sealed class MirrorJob : BlockJob
{
    /// <summary>QEMU's <c>DEFAULT_MIRROR_BUF_SIZE</c>.</summary>
    public const long DefaultBufferBytes = 16L << 20;

    /// <summary>QEMU's <c>MAX_IN_FLIGHT</c>.</summary>
    public const int MaxInFlight = 16;

    private const long IdleNapNs = 100_000_000;

    /// <summary>Bytes written to the target between two write-out hints (<see cref="BlockNode.StartWritebackAsync"/>).</summary>
    /// <remarks>The target is flushed at READY (and a new qcow2 L2 table is synced midway): without the hints the copy
    /// waits in the page cache for those flushes, which then write it all while the job waits. drive-mirror of 1 GiB
    /// into a new qcow2 (bench/mirror-compare.sh, 2 busy cores): median 1.63 s without, 1.23 s with (QSD 1.39 s).</remarks>
    public const long WritebackBytes = 32L << 20;

    private readonly BlockNode _source;
    private readonly BlockNode _target;
    private readonly MirrorJobOptions _options;
    private readonly long _chunkBytes;
    private readonly long _align;
    private readonly List<Task> _ops = [];
    private readonly ConcurrentQueue<(bool IsRead, BlockException Error)> _errors = new();
    private DirtyBitmap? _dirty;
    private DirtyBitmap? _inFlight;
    private long _bytesInFlight;
    private long _writtenSinceHint;
    private long _cursor;
    private bool _converged;
    private bool _reopenedTarget;
    private bool _pivoted;

    public MirrorJob(BlockGraph graph, string id, BlockNode source, BlockNode target, MirrorJobOptions options)
        : base(graph, id, options.ActiveCommit ? "commit" : "mirror")
    {
        _source = source;
        _target = target;
        _options = options;
        // A target that names a backing file it has not opened reads a partly written cluster as zeroes around the
        // write, so copies are widened to whole target clusters (QEMU's cow bitmap case).
        _align = options.Granularity;
        if (target.Impl.BackingFileName != null && target.Backing is null && target.Impl.ClusterSize is { } cluster && cluster > _align)
            _align = cluster;
        long chunk = Math.Max(options.BufferBytes / MaxInFlight, _align);
        _chunkBytes = (chunk + _align - 1) / _align * _align;
    }

    protected override bool CanComplete => true;

    /// <summary>Holds the nodes (the base made writable for a commit), and attaches the dirty bitmap to the source.</summary>
    public async ValueTask SetUpAsync()
    {
        if (_options.ActiveCommit && _target.ReadOnly)
        {
            await Graph.ReopenAsync(_target, readOnly: false).ConfigureAwait(false);
            _reopenedTarget = true;
        }
        try
        {
            Hold(_source, "source", BlockPermissions.None, BlockPermissions.All);
            foreach (var n in _options.Intermediates)
                Hold(n, "intermediate node", BlockPermissions.None, BlockPermissions.All & ~BlockPermissions.Resize);
            var perm = BlockPermissions.Write | (_options.ActiveCommit ? BlockPermissions.ConsistentRead | BlockPermissions.Resize : 0);
            var targetShared = BlockPermissions.ConsistentRead | BlockPermissions.WriteUnchanged
                | (_options.ShareTargetWrite ? BlockPermissions.Write : BlockPermissions.None);
            Hold(_target, "target", perm, targetShared);
            _dirty = new DirtyBitmap(null, _source.Length, _options.Granularity);
            _inFlight = new DirtyBitmap(null, _source.Length, _options.Granularity);
            await using (await Graph.BeginDrainAsync().ConfigureAwait(false))
                _source.AttachDirtyBitmap(_dirty);
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
        var dirty = _dirty!;
        long length = _source.Length;
        if (_options.ActiveCommit && _target.Length < length)
            await _target.TruncateAsync(length, PreallocMode.Off).ConfigureAwait(false);
        await MarkInitialAsync(length).ConfigureAwait(false);

        BlockException? failure = null;
        while (true)
        {
            failure ??= ApplyErrors();
            if (failure != null)
                break;
            if (IsCancelled && (!IsReady || ForceCancelled))
                break;
            if (PauseRequested)
            {
                await WaitAllAsync().ConfigureAwait(false);
                if ((failure = ApplyErrors()) != null)
                    break;
                SettleLength();
                await PausePointAsync().ConfigureAwait(false);
                continue;
            }

            long count = dirty.Count;
            SetLength(Offset + count + Volatile.Read(ref _bytesInFlight));
            if (Volatile.Read(ref _writtenSinceHint) >= WritebackBytes)
            {
                Interlocked.Exchange(ref _writtenSinceHint, 0);
                _ops.Add(_target.StartWritebackAsync().AsTask());
            }
            if (!IsReady && Speed > 0 && count > 0)
            {
                // Rate limited, QEMU's way: one iteration issues a contiguous dirty run of up to buf-size, then the
                // job sleeps for what it cost (so the first burst goes unthrottled). A wake ends the sleep early and
                // the next burst goes at once, as 7.2's mirror does.
                await WaitAllAsync().ConfigureAwait(false);
                long issued = 0;
                while (issued < _options.BufferBytes && _ops.Count < MaxInFlight && _errors.IsEmpty && TryIssue(length, contiguous: issued > 0, out long n))
                    issued += n;
                RateLimitProcessed(issued);
                await WaitAllAsync().ConfigureAwait(false);
                await RateLimitSleepOnceAsync().ConfigureAwait(false);
                continue;
            }
            if (count > 0 && _ops.Count < MaxInFlight && Volatile.Read(ref _bytesInFlight) < _options.BufferBytes
                && _errors.IsEmpty && TryIssue(length, contiguous: false, out _))
            {
                continue;
            }
            if (_ops.Count > 0)
            {
                await Task.WhenAny(_ops).ConfigureAwait(false);
                _ops.RemoveAll(t => t.IsCompleted);
                continue;
            }
            if (count > 0)
                continue;

            if (!IsReady)
            {
                try
                {
                    await _target.FlushAsync().ConfigureAwait(false);
                }
                catch (BlockException e)
                {
                    if (HandleError(_options.OnTargetError, isRead: false, e.Errno) == BlockErrorAction.Report)
                    {
                        failure = e;
                        break;
                    }
                    continue;
                }
                SetReady();
                continue;
            }
            if (CompleteRequested || IsCancelled)
            {
                _converged = true;
                return;
            }
            await SleepAsync(IdleNapNs).ConfigureAwait(false);
        }
        await WaitAllAsync().ConfigureAwait(false);
        if (failure != null)
        {
            SettleLength();
            throw failure;
        }
    }

    /// <summary>
    /// Sets the length from a quiet moment (nothing in flight, failed runs dirty again). The loop's running figure reads
    /// the dirty count and the bytes in flight one after the other, so a copy that fails between the two reads can
    /// drop out of both; a paused or failed job must report what QEMU reports there.
    /// </summary>
    private void SettleLength() => SetLength(Offset + _dirty!.Count);

    /// <summary>Zeroes the target first when asked (a full copy onto an image that may hold data), then marks what the sync mode copies.</summary>
    private async ValueTask MarkInitialAsync(long length)
    {
        if (_options.SyncNone)
            return;
        if (_options.ZeroTarget && _target.Discard != BlockdevDiscardOptions.Unmap)
        {
            // A target that cannot write zeroes by unmapping is zeroed by copying everything (QEMU marks it all dirty).
            _dirty!.SetDirty(0, length);
            return;
        }
        if (_options.ZeroTarget)
        {
            var flags = _options.Unmap ? RequestFlags.MayUnmap : RequestFlags.None;
            for (long pos = 0; pos < length && !IsCancelled; pos += 1L << 30)
            {
                await _target.WriteZeroesAsync(pos, Math.Min(1L << 30, length - pos), flags).ConfigureAwait(false);
                await PausePointAsync().ConfigureAwait(false);
            }
        }
        for (long pos = 0; pos < length && !IsCancelled;)
        {
            var (allocated, bytes) = await _source.IsAllocatedAboveAsync(_options.Base, pos, length - pos).ConfigureAwait(false);
            bytes = Math.Max(1, Math.Min(bytes, length - pos));
            if (allocated)
                _dirty!.SetDirty(pos, bytes);
            pos += bytes;
        }
    }

    /// <summary>
    /// Starts a copy of the next dirty run that is not in flight; false when that run is in flight (wait for it), or
    /// with <paramref name="contiguous"/> when the next dirty run does not start where the last one ended.
    /// </summary>
    private bool TryIssue(long length, bool contiguous, out long issued)
    {
        issued = 0;
        var dirty = _dirty!;
        long next = dirty.NextDirty(_cursor);
        if (contiguous && next != _cursor)
            return false;
        if (next < 0)
            next = dirty.NextDirty(0);
        if (next < 0 || next >= length)
            return false;
        long first = next;
        next = next / _align * _align;
        if (_inFlight!.IsDirty(next))
            return false;
        long end = Math.Min(AlignUp(Math.Min(dirty.NextClean(first), next + _chunkBytes)), length);
        long busy = _inFlight.NextDirty(next);
        if (busy >= 0 && busy < end)
        {
            end = busy / _align * _align;
            if (end <= next)
                return false;
        }
        long bytes = end - next;
        dirty.ResetDirty(next, bytes);
        _inFlight.SetDirty(next, bytes);
        Interlocked.Add(ref _bytesInFlight, bytes);
        _cursor = end >= length ? 0 : end;
        _ops.Add(CopyOpAsync(next, bytes));
        issued = bytes;
        return true;
    }

    private long AlignUp(long offset) => (offset + _align - 1) / _align * _align;

    /// <summary>One copy in flight: on failure its range is dirty again and the error queued for the loop's policy.</summary>
    private async Task CopyOpAsync(long offset, long bytes)
    {
        await Task.Yield();
        try
        {
            var (isRead, error) = await CopyAsync(offset, bytes).ConfigureAwait(false);
            if (error != null)
            {
                // The error is queued before its range is dirty again, and nothing is issued while errors wait: the
                // loop applies the policy before it could copy (and fail on) the same range a second time. Issued
                // again first, a 'report' job sent two BLOCK_JOB_ERRORs where QEMU sends one (a flake under load).
                _errors.Enqueue((isRead, error));
                _dirty!.SetDirty(offset, bytes);
            }
            else
            {
                AddProgress(bytes);
                Interlocked.Add(ref _writtenSinceHint, bytes);
            }
        }
        finally
        {
            _inFlight!.ResetDirty(offset, bytes);
            Interlocked.Add(ref _bytesInFlight, -bytes);
        }
    }

    /// <summary>Copies <c>[offset, offset + bytes)</c>; returns the failure and its side instead of throwing it.</summary>
    private async ValueTask<(bool IsRead, BlockException? Error)> CopyAsync(long offset, long bytes)
    {
        var buffer = Graph.Buffers.Rent((int)Math.Min(bytes, _chunkBytes));
        bool isRead = true;
        try
        {
            long end = offset + bytes;
            for (long pos = offset; pos < end;)
            {
                isRead = true;
                var status = await _source.GetBlockStatusAsync(pos, end - pos, wantZero: true).ConfigureAwait(false);
                long run = Math.Max(1, Math.Min(end - pos, status.Bytes));
                if (status.Has(BlockStatusFlags.Zero))
                {
                    isRead = false;
                    await _target.WriteZeroesAsync(pos, run, _options.ZeroFlags).ConfigureAwait(false);
                }
                else
                {
                    run = Math.Min(run, buffer.Memory.Length);
                    var piece = buffer.Memory[..(int)run];
                    await _source.ReadAsync(pos, piece).ConfigureAwait(false);
                    isRead = false;
                    await _target.WriteAsync(pos, piece).ConfigureAwait(false);
                }
                pos += run;
            }
            return (isRead, null);
        }
        catch (BlockException e)
        {
            return (isRead, e);
        }
        finally
        {
            buffer.Return(clear: false);
        }
    }

    /// <summary>Applies the error policies to failed copies; returns the first failure a <c>report</c> policy ends the job with.</summary>
    private BlockException? ApplyErrors()
    {
        BlockException? failure = null;
        while (_errors.TryDequeue(out var e))
        {
            var policy = e.IsRead ? _options.OnSourceError : _options.OnTargetError;
            if (HandleError(policy, e.IsRead, e.Error.Errno) == BlockErrorAction.Report)
                failure ??= e.Error;
        }
        return failure;
    }

    private async ValueTask WaitAllAsync()
    {
        if (_ops.Count == 0)
            return;
        await Task.WhenAll(_ops).ConfigureAwait(false);
        _ops.Clear();
    }

    /// <summary>Copies what is still dirty, one run after another (called drained: no guest write races it).</summary>
    private async ValueTask FinalSyncAsync()
    {
        var dirty = _dirty!;
        long length = _source.Length;
        for (long next = dirty.NextDirty(0); next >= 0 && next < length; next = dirty.NextDirty(0))
        {
            long first = next;
            next = next / _align * _align;
            long end = Math.Min(AlignUp(Math.Min(dirty.NextClean(first), next + _chunkBytes)), length);
            dirty.ResetDirty(next, end - next);
            var (_, error) = await CopyAsync(next, end - next).ConfigureAwait(false);
            if (error != null)
            {
                dirty.SetDirty(next, end - next);
                throw error;
            }
            AddProgress(end - next);
        }
        SetLength(Offset);
        await _target.FlushAsync().ConfigureAwait(false);
    }

    /// <summary>The switch-over: last copies, the target's backing node, then every user of the replaced node moves to the target.</summary>
    protected override async ValueTask PrepareAsync()
    {
        var replaced = _source;
        if (_options.Replaces is { } name)
            replaced = Graph.FindNode(name) ?? throw new BlockException(Errno.EINVAL, $"Can't find node {name}");
        await using (await Graph.BeginDrainAsync().ConfigureAwait(false))
        {
            await FinalSyncAsync().ConfigureAwait(false);
            RelaxHolds();
            if (_options.TargetBacking is { } backing && _target.Backing is null)
                await Graph.SetBackingNodeAsync(_target, backing).ConfigureAwait(false);
            else if (_options.OpenBackingFromHeader && _target.Backing is null)
                await Graph.OpenBackingFromHeaderAsync(_target).ConfigureAwait(false);
            Graph.ReplaceNode(replaced, _target);
            _pivoted = true;
        }
    }

    /// <summary>A cancel after READY converges first, so that the target is a consistent copy; nothing switches over.</summary>
    protected override async ValueTask AbortAsync()
    {
        if (!_converged || !IsCancelled)
            return;
        await using (await Graph.BeginDrainAsync().ConfigureAwait(false))
            await FinalSyncAsync().ConfigureAwait(false);
    }

    protected override async ValueTask CleanAsync()
    {
        if (_dirty != null)
        {
            _source.DetachDirtyBitmap(_dirty);
            _dirty = null;
        }
        if (_reopenedTarget && !_pivoted && _target.IsOpen)
        {
            _reopenedTarget = false;
            await Graph.ReopenAsync(_target, readOnly: true).ConfigureAwait(false);
        }
    }
}

/// <summary>What a <see cref="MirrorJob"/> copies and how it finishes (the commands' arguments, resolved).</summary>
internal sealed record MirrorJobOptions
{
    /// <summary>Copy what lies above this node (null: the whole chain).</summary>
    public BlockNode? Base { get; init; }

    /// <summary>sync=none: copy only what guests write from now on.</summary>
    public bool SyncNone { get; init; }

    /// <summary>Bytes per dirty bit.</summary>
    public long Granularity { get; init; } = 65536;

    /// <summary>Bytes in flight at most.</summary>
    public long BufferBytes { get; init; } = MirrorJob.DefaultBufferBytes;

    /// <summary>What a failed read of the source does.</summary>
    public BlockdevOnError OnSourceError { get; init; }

    /// <summary>What a failed write of the target does.</summary>
    public BlockdevOnError OnTargetError { get; init; }

    /// <summary>Zero runs may be unmapped on the target.</summary>
    public bool Unmap { get; init; } = true;

    /// <summary>Zero the whole target first (a full copy onto an image that may hold data).</summary>
    public bool ZeroTarget { get; init; }

    /// <summary>The node name whose users move to the target at completion (null: the source's).</summary>
    public string? Replaces { get; init; }

    /// <summary>The backing node the target gets at completion (drive-mirror with absolute-paths).</summary>
    public BlockNode? TargetBacking { get; init; }

    /// <summary>At completion the target opens the backing file its header names (drive-mirror with mode=existing).</summary>
    public bool OpenBackingFromHeader { get; init; }

    /// <summary>An active commit: the job type is <c>commit</c> and the target is the base, made writable and grown.</summary>
    public bool ActiveCommit { get; init; }

    /// <summary>
    /// Lets others write the target while the job runs: replication's failover commits into the secondary disk, which
    /// its drive and NBD export keep open for writing (QEMU's active commit shares writes on a target in the source's
    /// backing chain).
    /// </summary>
    public bool ShareTargetWrite { get; init; }

    /// <summary>The nodes between an active commit's top and its base, held for the job.</summary>
    public IReadOnlyList<BlockNode> Intermediates { get; init; } = [];

    /// <summary>Flags of the target's write-zeroes for zero runs.</summary>
    public RequestFlags ZeroFlags => Unmap && Base is null && !SyncNone ? RequestFlags.MayUnmap : RequestFlags.None;
}
