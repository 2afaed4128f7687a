using Block.Bitmaps;
using Block.Graph;
using Block.Qapi;

namespace Block.Jobs;

/// <summary>
/// <c>drive-backup</c> and <c>blockdev-backup</c> (QEMU's backup job): a copy of the source as it was when the job
/// started, taken while guests keep writing to it. Guest writes first copy the old content of the clusters they touch
/// to the target (copy-before-write, a notifier on the source's write path); the job copies the rest in the
/// background.
/// </summary>
/// <remarks>
/// <para>The unit is the job's cluster, the larger of 64 KiB and the target's cluster size. A bitmap of clusters still
/// to copy is filled at the start (under a drained section, so it is the disk at that moment): every cluster for
/// <c>full</c> and <c>none</c>, those allocated in the source's top image for <c>top</c> (the target's backing file
/// supplies the rest, so an unallocated cluster needs no copy even when a guest overwrites it), and those a dirty bitmap
/// marks for <c>incremental</c>. A copy claims its clusters (clears their bits) under a lock before it reads, and a
/// guest write waits for any claimed copy overlapping it, so the old content always reaches the target first. Progress
/// length is what the bitmap held (QEMU 7.2's: <c>top</c> counts allocated clusters, an empty incremental is 0).
/// <c>none</c> copies nothing in the background and runs until cancelled (image fleecing).</para>
/// <para>The background loop keeps up to <see cref="Window"/> copies of up to <see cref="ChunkBytes"/> in flight (one
/// with a speed limit, so the limit holds as QEMU holds it). Data that reads as zeroes is written as write-zeroes with
/// unmap; <c>compress</c> writes each cluster compressed. A failed copy puts its clusters back; the error policy then
/// applies: <c>report</c> ends the job, <c>stop</c> pauses it until <c>block-job-resume</c> and copies again,
/// <c>ignore</c> copies again at once (a persistent error repeats until the job is cancelled, as in QEMU). A failure
/// of a copy-before-write fails the guest write, as in QEMU 2.8.</para>
/// <para>Incremental backup (QEMU 2.8's rules): the bitmap is frozen for the job's duration (busy: no remove, clear or
/// second backup); its bits are taken into the job and it records only the writes made during the job. On success it
/// therefore holds exactly those writes; on failure or cancel the bits taken are merged back, so the next incremental
/// backup copies them again.</para>
/// </remarks>
internal sealed class BackupJob : BlockJob, IBeforeWriteNotifier
{
    /// <summary>The smallest job cluster (QEMU's <c>BACKUP_CLUSTER_SIZE_DEFAULT</c>).</summary>
    public const int MinClusterBytes = 64 * 1024;

    /// <summary>The most one background copy moves (QEMU 7.2's block-copy buffer of 1 MiB).</summary>
    public const int ChunkBytes = 1024 * 1024;

    /// <summary>Background copies in flight without a speed limit.</summary>
    /// <remarks>1 GiB full backup, bench/backup-compare.sh on this 2-core machine under other builds: one copy in
    /// flight took 2.6 s and 1.7 s (QSD 7.3 s, 8.5 s), four took 2.6 s and 0.66 s (QSD 4.8 s, 4.6 s).</remarks>
    public const int Window = 4;

    private readonly BlockNode _source;
    private readonly BlockNode _target;
    private readonly MirrorSyncMode _sync;
    private readonly DirtyBitmap? _bitmap;
    private readonly bool _compress;
    private readonly BlockdevOnError _onSourceError;
    private readonly BlockdevOnError _onTargetError;
    private readonly long _cluster;
    private readonly long _length;
    private readonly object _copyLock = new();
    private readonly List<Claim> _claims = [];
    private readonly DirtyBitmap _toCopy;
    private DirtyBitmap? _taken;
    private bool _notifying;

    public BackupJob(BlockGraph graph, string id, BlockNode source, BlockNode target, MirrorSyncMode sync, DirtyBitmap? bitmap,
        bool compress, BlockdevOnError onSourceError, BlockdevOnError onTargetError)
        : base(graph, id, "backup")
    {
        _source = source;
        _target = target;
        _sync = sync;
        _bitmap = bitmap;
        _compress = compress;
        _onSourceError = onSourceError;
        _onTargetError = onTargetError;
        _cluster = Math.Max(MinClusterBytes, target.Impl.ClusterSize ?? 0);
        _length = source.Length;
        _toCopy = new DirtyBitmap(null, _length, _cluster);
    }

    /// <summary>
    /// Holds the source and the target, freezes the bitmap, and, drained, takes the disk's state: fills the bitmap of
    /// clusters to copy and installs the copy-before-write notifier on the source.
    /// </summary>
    public async ValueTask SetUpAsync()
    {
        try
        {
            Hold(_source, "source", BlockPermissions.ConsistentRead, BlockPermissions.All & ~BlockPermissions.Resize);
            // The target is shared for everything but resizing, as QEMU 7.2's copy-before-write filter shares it: a
            // target whose backing node is the source (drive-backup sync=none, image fleecing) passes that on to its
            // backing edge, and the guest keeps writing the source.
            Hold(_target, "target", BlockPermissions.Write | BlockPermissions.WriteUnchanged,
                BlockPermissions.All & ~BlockPermissions.Resize);
            await using (await Graph.BeginDrainAsync().ConfigureAwait(false))
            {
                await FillToCopyAsync().ConfigureAwait(false);
                if (_bitmap != null)
                {
                    _bitmap.Busy = true;
                    _taken = new DirtyBitmap(null, _bitmap.Length, _bitmap.Granularity);
                    _taken.Merge(_bitmap);
                    _bitmap.Clear();
                }
                _source.AddBeforeWriteNotifier(this);
                _notifying = true;
            }
            SetLength(_sync == MirrorSyncMode.None ? _length : _toCopy.Count - TailPadding());
        }
        catch
        {
            // A bitmap whose bits were taken gets them back.
            await AbortAsync().ConfigureAwait(false);
            await ReleaseHeldAsync().ConfigureAwait(false);
            await CleanAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Makes every cluster of a <c>sync=none</c> job one to copy again before its next overwrite: replication's
    /// checkpoint, after it emptied the target, so the target again keeps the source as it is now. Call drained.
    /// </summary>
    internal void CopyAllAgain()
    {
        lock (_copyLock)
            _toCopy.SetDirty(0, _length);
    }

    /// <summary>Bytes the last cluster counts past the end of the disk when it is to be copied (a partial cluster).</summary>
    private long TailPadding()
    {
        long tail = _length % _cluster;
        return tail != 0 && _toCopy.IsDirty(_length - 1) ? _cluster - tail : 0;
    }

    private async ValueTask FillToCopyAsync()
    {
        switch (_sync)
        {
            case MirrorSyncMode.Full:
            case MirrorSyncMode.None:
                _toCopy.SetDirty(0, _length);
                break;
            case MirrorSyncMode.Top:
                for (long offset = 0; offset < _length;)
                {
                    var status = await _source.GetBlockStatusAsync(offset, _length - offset, wantZero: false).ConfigureAwait(false);
                    long n = Math.Max(1, status.Bytes);
                    if (status.Has(BlockStatusFlags.Allocated))
                        _toCopy.SetDirty(offset, n);
                    offset += n;
                }
                break;
            case MirrorSyncMode.Incremental:
                foreach (var (offset, length) in _bitmap!.DirtyRanges())
                    _toCopy.SetDirty(offset, length);
                break;
        }
    }

    protected override async ValueTask RunAsync()
    {
        if (_sync == MirrorSyncMode.None)
        {
            // Image fleecing: only guest writes copy; the job runs until cancelled.
            while (!IsCancelled)
                await SleepAsync(long.MaxValue).ConfigureAwait(false);
            return;
        }

        var running = new List<(Task<Exception?> Task, long Start)>(Window);
        long pos = 0;
        try
        {
            while (true)
            {
                await RateLimitSleepAsync().ConfigureAwait(false);
                if (IsCancelled)
                    break;
                var claim = pos < _length ? TryClaimNext(ref pos) : null;
                if (claim is null && running.Count == 0)
                {
                    // Nothing left but what failed copies put back behind the cursor.
                    if (_toCopy.NextDirty(0) < 0)
                        break;
                    pos = 0;
                    continue;
                }
                if (claim != null)
                    running.Add((CopyClaimAsync(claim), claim.Start));
                if (claim != null && running.Count < (Speed > 0 ? 1 : Window))
                    continue;

                var (task, start) = running[0];
                running.RemoveAt(0);
                var error = await task.ConfigureAwait(false);
                if (error is CopyException failure)
                {
                    // As QEMU's block-copy call: a failure stops new copies, the ones running finish (their failed
                    // clusters go back to copy too), and the round reports its first error once. Handling each failed
                    // copy on its own would stop the job again, after a resume, for a copy that failed before it.
                    pos = Math.Min(pos, start);
                    Exception? fatal = null;
                    foreach (var (other, otherStart) in running)
                    {
                        var e = await other.ConfigureAwait(false);
                        if (e is CopyException)
                            pos = Math.Min(pos, otherStart);
                        else
                            fatal ??= e;
                    }
                    running.Clear();
                    if (fatal != null)
                        throw fatal;
                    var action = HandleError(failure.IsRead ? _onSourceError : _onTargetError, failure.IsRead, failure.Inner.Errno);
                    if (action == BlockErrorAction.Report)
                        throw failure.Inner;
                }
                else if (error != null)
                {
                    throw error;
                }
            }
        }
        finally
        {
            foreach (var (task, _) in running)
                await task.ConfigureAwait(false);
        }
        // Copies guest writes started are part of the backup: wait for them.
        await WaitClaimsAsync(0, _length).ConfigureAwait(false);
    }

    /// <summary>Claims the next run of clusters to copy at or after <paramref name="pos"/>, up to <see cref="ChunkBytes"/>.</summary>
    private Claim? TryClaimNext(ref long pos)
    {
        lock (_copyLock)
        {
            long start = _toCopy.NextDirty(pos);
            if (start < 0)
            {
                pos = _length;
                return null;
            }
            long end = Math.Min(_toCopy.NextClean(start), Math.Min(_length, start + ChunkBytes));
            pos = end;
            return ClaimLocked(start, end);
        }
    }

    private Claim ClaimLocked(long start, long end)
    {
        _toCopy.ResetDirty(start, end - start);
        var claim = new Claim(start, end);
        _claims.Add(claim);
        return claim;
    }

    /// <summary>Copies a claimed run; returns the failure (the clusters are then to copy again) instead of throwing.</summary>
    private async Task<Exception?> CopyClaimAsync(Claim claim)
    {
        try
        {
            await CopyAsync(claim).ConfigureAwait(false);
            return null;
        }
        catch (Exception e)
        {
            return e;
        }
    }

    /// <summary>Reads a claimed run from the source and writes it to the target, then releases the claim.</summary>
    private async ValueTask CopyAsync(Claim claim)
    {
        long n = claim.End - claim.Start;
        bool reading = true;
        var buffer = Graph.Buffers.Rent((int)n);
        try
        {
            var data = buffer.Memory[..(int)n];
            await _source.ReadAsync(claim.Start, data).ConfigureAwait(false);
            reading = false;
            if (data.Span.IndexOfAnyExcept((byte)0) < 0)
            {
                await _target.WriteZeroesAsync(claim.Start, n, RequestFlags.MayUnmap).ConfigureAwait(false);
            }
            else if (_compress)
            {
                for (long c = 0; c < n; c += _cluster)
                {
                    int len = (int)Math.Min(_cluster, n - c);
                    await _target.WriteAsync(claim.Start + c, data.Slice((int)c, len), RequestFlags.Compressed).ConfigureAwait(false);
                }
            }
            else
            {
                await _target.WriteAsync(claim.Start, data).ConfigureAwait(false);
            }
            AddProgress(n);
            RateLimitProcessed(n);
            Release(claim, failed: false);
        }
        catch (BlockException e)
        {
            Release(claim, failed: true);
            throw new CopyException(e, reading);
        }
        catch
        {
            Release(claim, failed: true);
            throw;
        }
        finally
        {
            buffer.Return(clear: false);
        }
    }

    private void Release(Claim claim, bool failed)
    {
        lock (_copyLock)
        {
            if (failed)
                _toCopy.SetDirty(claim.Start, claim.End - claim.Start);
            _claims.Remove(claim);
        }
        claim.Done.TrySetResult();
    }

    /// <summary>A claimed copy overlapping <c>[start, end)</c>, or null (a loop: the write path allocates nothing here).</summary>
    private Claim? FindClaimLocked(long start, long end)
    {
        foreach (var c in _claims)
        {
            if (c.Start < end && start < c.End)
                return c;
        }
        return null;
    }

    /// <summary>Waits until no claimed copy overlaps <c>[start, end)</c>.</summary>
    private async ValueTask WaitClaimsAsync(long start, long end)
    {
        while (true)
        {
            Task wait;
            lock (_copyLock)
            {
                var busy = FindClaimLocked(start, end);
                if (busy is null)
                    return;
                wait = busy.Done.Task;
            }
            await wait.ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Copy-before-write: copies the clusters of <c>[offset, offset + bytes)</c> that still hold the content of the
    /// job's start, and waits for any copy of them in flight, before the guest request changes them.
    /// </summary>
    ValueTask IBeforeWriteNotifier.BeforeWriteAsync(long offset, long bytes)
    {
        if (!Volatile.Read(ref _notifying) || offset >= _length)
            return default;
        long start = offset / _cluster * _cluster;
        long end = Math.Min(_length, offset + bytes);
        lock (_copyLock)
        {
            // The common case once a cluster is copied: nothing to do, no allocation.
            long next = _toCopy.NextDirty(start);
            if ((next < 0 || next >= end) && FindClaimLocked(start, end) is null)
                return default;
        }
        return CopyBeforeWriteAsync(start, end);
    }

    private async ValueTask CopyBeforeWriteAsync(long start, long end)
    {
        while (true)
        {
            await WaitClaimsAsync(start, end).ConfigureAwait(false);
            Claim? claim = null;
            lock (_copyLock)
            {
                long s = _toCopy.NextDirty(start);
                if (s >= 0 && s < end)
                {
                    long e = Math.Min(_toCopy.NextClean(s), (end + _cluster - 1) / _cluster * _cluster);
                    claim = ClaimLocked(s, Math.Min(e, _length));
                }
                else if (FindClaimLocked(start, end) is null)
                {
                    return;
                }
            }
            if (claim is null)
                continue;
            try
            {
                await CopyAsync(claim).ConfigureAwait(false);
            }
            catch (CopyException e)
            {
                // The guest write fails; the clusters stay to copy.
                throw e.Inner;
            }
        }
    }

    protected override ValueTask AbortAsync()
    {
        // The bits the job took go back into the bitmap, beside the writes made meanwhile.
        if (_bitmap != null && _taken != null)
        {
            _bitmap.Merge(_taken);
            _taken = null;
        }
        return default;
    }

    protected override async ValueTask CleanAsync()
    {
        if (_notifying)
        {
            await using (await Graph.BeginDrainAsync().ConfigureAwait(false))
            {
                Volatile.Write(ref _notifying, false);
                _source.RemoveBeforeWriteNotifier(this);
            }
        }
        if (_bitmap != null)
            _bitmap.Busy = false;
    }

    /// <summary>A run of clusters being copied; guest writes over it wait for <see cref="Done"/>.</summary>
    private sealed class Claim(long start, long end)
    {
        public long Start { get; } = start;

        public long End { get; } = end;

        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }

    /// <summary>A failed copy, with the side it failed on (the error policy to apply).</summary>
    private sealed class CopyException(BlockException inner, bool isRead) : Exception(inner.Message, inner)
    {
        public BlockException Inner { get; } = inner;

        public bool IsRead { get; } = isRead;
    }
}
