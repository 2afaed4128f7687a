using System.Globalization;
using Block.Bitmaps;
using Block.Jobs;
using Block.Qapi;

namespace Block.Graph;

/// <summary>The backup commands (<c>drive-backup</c>, <c>blockdev-backup</c>): argument checks in QEMU's order and the
/// target <c>drive-backup</c> creates; the job is <see cref="BackupJob"/>.</summary>
public sealed partial class BlockGraph
{
    /// <summary>
    /// Backs a disk up into an image file, live (QMP <c>drive-backup</c>): the file is created (or, with
    /// <see cref="NewImageMode.Existing"/>, opened) and receives the disk as it is now while guests keep writing; see
    /// <see cref="BackupJob"/>.
    /// </summary>
    /// <remarks>
    /// A created target has the source's length and format unless <paramref name="format"/> says otherwise; for
    /// <c>top</c> its backing file is the source's backing image, for <c>none</c> the source itself, and it has none for
    /// <c>full</c> and <c>incremental</c> (<c>top</c> on a source without a backing image is <c>full</c>). The target is
    /// opened without its backing chain and given the live node as its backing node (the source's backing node for
    /// <c>top</c>, the source for <c>none</c>), so that the file is not opened twice. The job owns the target: it is
    /// closed when the job ends.
    /// </remarks>
    /// <param name="jobId">The job id, or null for the name of the device.</param>
    /// <param name="device">The source: a backend or node name.</param>
    /// <param name="target">The target's file name.</param>
    /// <param name="sync">What to copy.</param>
    /// <param name="format">The target's format (default: the source's; probed for an existing file).</param>
    /// <param name="mode">Create the file (the default) or open it as it is.</param>
    /// <param name="bitmap">The dirty bitmap of an incremental backup.</param>
    /// <param name="compress">Write the target compressed.</param>
    /// <param name="speed">Bytes per second, 0 for no limit.</param>
    /// <param name="onSourceError">What a read error does.</param>
    /// <param name="onTargetError">What a write error does.</param>
    /// <param name="cancellationToken">Cancels creating and opening the target.</param>
    /// <returns>The started job.</returns>
    /// <exception cref="BlockException">The lookup's errors, those of creating and opening the target, then those of
    /// <see cref="BlockdevBackupAsync"/>.</exception>
    public async ValueTask<BlockJob> DriveBackupAsync(string? jobId, string device, string target, MirrorSyncMode sync,
        string? format = null, NewImageMode mode = NewImageMode.AbsolutePaths, string? bitmap = null, bool compress = false,
        long speed = 0, BlockdevOnError onSourceError = BlockdevOnError.Report, BlockdevOnError onTargetError = BlockdevOnError.Report,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(target);
        var bs = LookupNode(device, device);
        if (mode != NewImageMode.Existing)
            format ??= bs.DriverName;
        BlockNode? backing = sync switch
        {
            MirrorSyncMode.Top => bs.Backing?.Node,
            MirrorSyncMode.None => bs,
            _ => null,
        };
        if (sync == MirrorSyncMode.Top && backing is null)
            sync = MirrorSyncMode.Full;

        if (mode != NewImageMode.Existing)
        {
            var options = new Dictionary<string, string>(StringComparer.Ordinal)
            {
                ["size"] = bs.Length.ToString(CultureInfo.InvariantCulture),
            };
            if (backing != null)
            {
                options["backing_file"] = backing.Filename;
                options["backing_fmt"] = backing.DriverName;
            }
            await CreateImageAsync(format!, target, options, cancellationToken).ConfigureAwait(false);
        }
        var targetNode = await OpenImageNodeAsync(target, new ImageOpenOptions
        {
            Format = format,
            AllowProbing = format is null,
            NoBacking = true,
            CacheDirect = bs.CacheDirect,
            NoFlush = bs.CacheNoFlush,
        }, cancellationToken).ConfigureAwait(false);
        try
        {
            if (backing != null)
            {
                await using (await BeginDrainAsync().ConfigureAwait(false))
                    await SetBackingNodeAsync(targetNode, backing).ConfigureAwait(false);
            }
            return await StartBackupAsync(jobId, bs, targetNode, sync, bitmap, compress, speed, onSourceError, onTargetError).ConfigureAwait(false);
        }
        finally
        {
            // The job holds the target now; without a job nothing does and it closes.
            await ReleaseNodeAsync(targetNode).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Backs a node up into another node, live (QMP <c>blockdev-backup</c>, with QEMU 7.2's <c>bitmap</c>): see
    /// <see cref="BackupJob"/>.
    /// </summary>
    /// <param name="jobId">The job id, or null for the name of the device.</param>
    /// <param name="device">The source: a backend or node name.</param>
    /// <param name="target">The target: a backend or node name.</param>
    /// <param name="sync">What to copy.</param>
    /// <param name="bitmap">The dirty bitmap of an incremental backup (required for it, refused otherwise).</param>
    /// <param name="compress">Write the target compressed.</param>
    /// <param name="speed">Bytes per second, 0 for no limit.</param>
    /// <param name="onSourceError">What a read error does.</param>
    /// <param name="onTargetError">What a write error does.</param>
    /// <returns>The started job.</returns>
    /// <exception cref="BlockException">In QEMU's order: the lookups', "Bitmap 'x' could not be found", a busy bitmap,
    /// "Source and target cannot be the same", "Compression is not supported for this drive x" (x the device name, empty for a node without one, as QEMU prints it), "Node 'x' is busy: …"
    /// (the source, which also refuses a second backup of one source as the seed does, then the target), "must provide
    /// a valid bitmap name for 'incremental' sync mode", a bitmap with another sync mode, then the job id's and the
    /// speed's.</exception>
    public async ValueTask<BlockJob> BlockdevBackupAsync(string? jobId, string device, string target, MirrorSyncMode sync,
        string? bitmap = null, bool compress = false, long speed = 0,
        BlockdevOnError onSourceError = BlockdevOnError.Report, BlockdevOnError onTargetError = BlockdevOnError.Report)
    {
        var bs = LookupNode(device, device);
        var targetNode = LookupNode(target, target);
        return await StartBackupAsync(jobId, bs, targetNode, sync, bitmap, compress, speed, onSourceError, onTargetError).ConfigureAwait(false);
    }

    private async ValueTask<BlockJob> StartBackupAsync(string? jobId, BlockNode bs, BlockNode target, MirrorSyncMode sync, string? bitmap,
        bool compress, long speed, BlockdevOnError onSourceError, BlockdevOnError onTargetError)
    {
        DirtyBitmap? bm = null;
        if (bitmap != null)
        {
            bm = bs.FindDirtyBitmap(bitmap) ?? throw new BlockException(Errno.ENOENT, $"Bitmap '{bitmap}' could not be found");
            if (bm.Busy)
                throw new BlockException(Errno.EBUSY, $"Bitmap '{bitmap}' is currently in use by another operation and cannot be used");
            if (bm.Inconsistent)
                throw new BlockException(Errno.EPERM, $"Bitmap '{bitmap}' is inconsistent and cannot be used");
        }
        if (ReferenceEquals(bs, target))
            throw new BlockException(Errno.EINVAL, "Source and target cannot be the same");
        if (compress && (target.Impl.SupportedWriteFlags & RequestFlags.Compressed) == 0)
            throw new BlockException(Errno.ENOTSUP, $"Compression is not supported for this drive {DeviceName(target)}");
        ThrowIfBusy(bs);
        ThrowIfBusy(target);
        if (sync == MirrorSyncMode.Incremental && bm is null)
            throw new BlockOptionsException("must provide a valid bitmap name for 'incremental' sync mode");
        if (bm != null && sync != MirrorSyncMode.Incremental)
        {
            throw new BlockOptionsException(
                $"a sync_bitmap was provided to backup_run, but received an incompatible sync_mode ({QapiEnum<MirrorSyncMode>.ToWire(sync)})");
        }
        if (target.Length < bs.Length)
            throw new BlockException(Errno.EINVAL, "Source and target image have different sizes");

        string id = ResolveJobId(jobId, bs);
        var job = new BackupJob(this, id, bs, target, sync, bm, compress, onSourceError, onTargetError);
        job.SetSpeed(speed);
        await job.SetUpAsync().ConfigureAwait(false);
        StartJob(job);
        return job;
    }
}
