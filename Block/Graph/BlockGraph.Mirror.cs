using System.Globalization;
using System.Numerics;
using System.Text.Json.Nodes;
using Block.Drivers;
using Block.Jobs;
using Block.Qapi;

namespace Block.Graph;

/// <summary>
/// The mirror commands (<c>drive-mirror</c>, <c>blockdev-mirror</c>) and the active <c>block-commit</c>, all run by
/// <see cref="MirrorJob"/>, and the switch-over they end with.
/// </summary>
public sealed partial class BlockGraph
{
    /// <summary>QEMU's largest mirror granularity (64 MiB).</summary>
    private const long MaxMirrorGranularity = 64L << 20;

    /// <summary>
    /// Mirrors a root node onto a node that exists already (QMP <c>blockdev-mirror</c>): see <see cref="MirrorJob"/>.
    /// The target keeps whatever backing node it has.
    /// </summary>
    /// <param name="jobId">The job id, or null for the device's name.</param>
    /// <param name="device">A backend, or a node no other node uses.</param>
    /// <param name="target">The target node (or backend) name.</param>
    /// <param name="sync">full, top or none (incremental is refused as QEMU refuses it).</param>
    /// <param name="replaces">The node whose users move to the target at completion (default: the device's node).</param>
    /// <param name="speed">Bytes per second before READY, 0 for no limit.</param>
    /// <param name="granularity">Bytes per dirty bit (0 or null: the target's cluster size in [4 KiB, 64 KiB]).</param>
    /// <param name="bufSize">Bytes in flight at most (0 or null: 16 MiB).</param>
    /// <param name="onSourceError">What a failed read of the source does.</param>
    /// <param name="onTargetError">What a failed write of the target does.</param>
    /// <returns>The started job.</returns>
    /// <exception cref="BlockException">QEMU 7.2's errors in its order (see <see cref="DriveMirrorAsync"/>).</exception>
    public async ValueTask<BlockJob> BlockdevMirrorAsync(string? jobId, string device, string target, MirrorSyncMode sync,
        string? replaces = null, long speed = 0, long? granularity = null, long? bufSize = null,
        BlockdevOnError onSourceError = BlockdevOnError.Report, BlockdevOnError onTargetError = BlockdevOnError.Report)
    {
        var bs = LookupRootNode(device);
        var targetBs = LookupNode(target, target);
        return await StartMirrorAsync(jobId, bs, targetBs, sync, replaces, speed, granularity, bufSize, onSourceError,
            onTargetError, unmap: true, zeroTarget: sync == MirrorSyncMode.Full, targetBacking: null, openBacking: false).ConfigureAwait(false);
    }

    /// <summary>
    /// Mirrors a root node into an image file (QMP <c>drive-mirror</c>): with <c>absolute-paths</c> (the default) the
    /// file is created at the source's length, backed by nothing (full), the source's backing image (top) or the source
    /// itself (none); with <c>existing</c> it is opened as it is. The target opens without its backing chain; at
    /// completion it gets the backing node the mode implies (the one named in its header for <c>existing</c>).
    /// </summary>
    /// <param name="jobId">The job id, or null for the device's name.</param>
    /// <param name="device">A backend, or a node no other node uses.</param>
    /// <param name="target">The target's file name.</param>
    /// <param name="sync">full, top or none.</param>
    /// <param name="format">The target's format (default: the source's, or probed for <c>existing</c>).</param>
    /// <param name="nodeName">The target node's name.</param>
    /// <param name="replaces">The node whose users move to the target at completion (needs <paramref name="nodeName"/>).</param>
    /// <param name="mode">Create the file (absolute-paths, the default) or open it (existing).</param>
    /// <param name="speed">Bytes per second before READY, 0 for no limit.</param>
    /// <param name="granularity">Bytes per dirty bit (0 or null: the target's cluster size in [4 KiB, 64 KiB]).</param>
    /// <param name="bufSize">Bytes in flight at most (0 or null: 16 MiB).</param>
    /// <param name="onSourceError">What a failed read of the source does.</param>
    /// <param name="onTargetError">What a failed write of the target does.</param>
    /// <param name="unmap">Zero runs may be unmapped on the target (default true).</param>
    /// <param name="cancellationToken">Cancels the creation and the open.</param>
    /// <returns>The started job.</returns>
    /// <exception cref="BlockException">QEMU 7.2's errors, in its order: the device lookup's, "a node-name must be
    /// provided when replacing a named node of the graph", the creation's and the open's (the file stays created, as in
    /// QEMU), "Parameter 'granularity' expects a value in range [512B, 64MB]" / "… a power of 2", "Node 'x' is busy: …",
    /// the replaced node's, "Sync mode 'incremental' not supported", "Invalid parameter 'buf-size'", "Can't mirror node
    /// into itself", the job id's and the speed's.</exception>
    public async ValueTask<BlockJob> DriveMirrorAsync(string? jobId, string device, string target, MirrorSyncMode sync,
        string? format = null, string? nodeName = null, string? replaces = null, NewImageMode? mode = null, long speed = 0,
        long? granularity = null, long? bufSize = null, BlockdevOnError onSourceError = BlockdevOnError.Report,
        BlockdevOnError onTargetError = BlockdevOnError.Report, bool unmap = true, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(target);
        var bs = LookupRootNode(device);
        var imageMode = mode ?? NewImageMode.AbsolutePaths;
        format ??= imageMode == NewImageMode.Existing ? null : bs.DriverName;
        var targetBacking = bs.Backing?.Node;
        if (targetBacking is null && sync == MirrorSyncMode.Top)
            sync = MirrorSyncMode.Full;
        if (sync == MirrorSyncMode.None)
            targetBacking = bs;
        if (replaces != null && nodeName is null)
            throw new BlockOptionsException("a node-name must be provided when replacing a named node of the graph");

        if (imageMode != NewImageMode.Existing)
        {
            var create = new Dictionary<string, string>(StringComparer.Ordinal)
            {
                ["size"] = bs.Length.ToString(CultureInfo.InvariantCulture),
            };
            if (sync != MirrorSyncMode.Full && targetBacking != null)
            {
                create["backing_file"] = targetBacking.Filename;
                create["backing_fmt"] = targetBacking.DriverName;
            }
            await CreateImageAsync(format!, target, create, cancellationToken).ConfigureAwait(false);
        }
        var extra = new JsonObject();
        if (nodeName != null)
            extra["node-name"] = nodeName;
        var targetBs = await OpenImageNodeAsync(target, new ImageOpenOptions
        {
            Format = format,
            AllowProbing = format is null,
            NoBacking = true,
            CacheDirect = bs.CacheDirect,
            NoFlush = bs.CacheNoFlush,
            Discard = bs.Discard,
            ExtraOptions = extra,
        }, cancellationToken).ConfigureAwait(false);
        try
        {
            bool zeroTarget = sync == MirrorSyncMode.Full && (imageMode == NewImageMode.Existing || !targetBs.Impl.HasZeroInit);
            return await StartMirrorAsync(jobId, bs, targetBs, sync, replaces, speed, granularity, bufSize, onSourceError,
                onTargetError, unmap, zeroTarget,
                targetBacking: imageMode == NewImageMode.Existing ? null : targetBacking,
                openBacking: imageMode == NewImageMode.Existing).ConfigureAwait(false);
        }
        catch
        {
            await ReleaseNodeAsync(targetBs).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>QEMU's <c>blockdev_mirror_common</c> and <c>mirror_start_job</c>: the checks in QEMU's order, then the job.</summary>
    private async ValueTask<BlockJob> StartMirrorAsync(string? jobId, BlockNode bs, BlockNode target, MirrorSyncMode sync,
        string? replaces, long speed, long? granularity, long? bufSize, BlockdevOnError onSourceError,
        BlockdevOnError onTargetError, bool unmap, bool zeroTarget, BlockNode? targetBacking, bool openBacking)
    {
        long g = granularity ?? 0;
        if (g != 0 && (g < 512 || g > MaxMirrorGranularity))
            throw new BlockOptionsException("Parameter 'granularity' expects a value in range [512B, 64MB]");
        if (g != 0 && !BitOperations.IsPow2(g))
            throw new BlockOptionsException("Parameter 'granularity' expects a power of 2");
        ThrowIfBusy(bs);
        ThrowIfBusy(target);
        if (bs.Backing is null && sync == MirrorSyncMode.Top)
            sync = MirrorSyncMode.Full;
        if (replaces != null)
        {
            var toReplace = FindNode(replaces) ?? throw new BlockNotFoundException($"Failed to find node with node-name='{replaces}'");
            ThrowIfBusy(toReplace);
            ThrowIfUsedAsBacking(toReplace);
            if (!ReferenceEquals(toReplace, bs))
            {
                bool below = false;
                for (var n = bs; n.Driver.Kind == BlockDriverKind.Filter && n.PrimaryChild?.Node is { } child; n = child)
                    below |= ReferenceEquals(child, toReplace);
                if (!below)
                {
                    throw new BlockException(Errno.EINVAL,
                        $"Cannot replace '{replaces}' by a node mirrored from '{DeviceOrNodeName(bs)}', because it cannot be guaranteed that doing so would not lead to an abrupt change of visible data");
                }
                // Filter drivers keep their file child for as long as they are open, so the switch-over cannot move it.
                throw new BlockException(Errno.ENOTSUP, $"Replacing node '{replaces}' below the filter '{bs.NodeName}' is not supported");
            }
            if (toReplace.Length != bs.Length)
                throw new BlockException(Errno.EINVAL, "cannot replace image with a mirror image of different size");
        }
        if (sync == MirrorSyncMode.Incremental)
            throw new BlockOptionsException("Sync mode 'incremental' not supported");
        if (g == 0)
            g = target.DefaultBitmapGranularity;
        long buf = bufSize ?? 0;
        if (buf < 0)
            throw new BlockOptionsException("Invalid parameter 'buf-size'");
        if (buf == 0)
            buf = MirrorJob.DefaultBufferBytes;
        buf = (buf + g - 1) / g * g;
        if (ReferenceEquals(bs, target))
            throw new BlockOptionsException("Can't mirror node into itself");

        string id = ResolveJobId(jobId, bs);
        var job = new MirrorJob(this, id, bs, target, new MirrorJobOptions
        {
            Base = sync == MirrorSyncMode.Top ? bs.Backing?.Node : null,
            SyncNone = sync == MirrorSyncMode.None,
            Granularity = g,
            BufferBytes = buf,
            OnSourceError = onSourceError,
            OnTargetError = onTargetError,
            Unmap = unmap,
            ZeroTarget = zeroTarget,
            Replaces = replaces,
            TargetBacking = targetBacking,
            OpenBackingFromHeader = openBacking,
        });
        job.SetSpeed(speed);
        if (target.Length != bs.Length)
            throw new BlockException(Errno.EINVAL, "Source and target image have different sizes");
        await job.SetUpAsync().ConfigureAwait(false);
        StartJob(job);
        return job;
    }

    /// <summary>
    /// QEMU's active commit: a mirror of the active layer <paramref name="top"/> into <paramref name="base"/> (type
    /// <c>commit</c>) that copies what lies above the base; <c>block-job-complete</c> moves the top's users onto the
    /// base, leaving the images above it out of their chain.
    /// </summary>
    private async ValueTask<BlockJob> ActiveCommitAsync(string? jobId, BlockNode top, BlockNode @base, long speed, BlockdevOnError onError)
    {
        var intermediates = new List<BlockNode>();
        for (var n = top.Backing?.Node; n != null && !ReferenceEquals(n, @base); n = n.Backing?.Node)
            intermediates.Add(n);
        string id = ResolveJobId(jobId, top);
        var job = new MirrorJob(this, id, top, @base, new MirrorJobOptions
        {
            Base = @base,
            Granularity = @base.DefaultBitmapGranularity,
            OnSourceError = onError,
            OnTargetError = onError,
            ActiveCommit = true,
            Intermediates = intermediates,
        });
        job.SetSpeed(speed);
        await job.SetUpAsync().ConfigureAwait(false);
        StartJob(job);
        return job;
    }

    /// <summary>
    /// Moves every user of <paramref name="from"/> (backends and overlays; not the jobs holding it, nor
    /// <paramref name="to"/> itself) onto <paramref name="to"/> (QEMU's <c>bdrv_replace_node</c>). Call drained. On a
    /// permission conflict every edge moves back.
    /// </summary>
    /// <exception cref="BlockException">A user cannot change its child while open, or the permissions conflict.</exception>
    internal void ReplaceNode(BlockNode from, BlockNode to)
    {
        var moved = from.Parents.Where(e => BlockJob.HolderOf(e) is null && !ReferenceEquals(e.Parent, to)).ToList();
        foreach (var edge in moved)
        {
            if (edge.Parent is BlockNode user && (edge.Role & ChildRole.Cow) == 0 && !user.Impl.FollowsChildReplacement)
            {
                throw new BlockException(Errno.ENOTSUP,
                    $"Cannot replace node '{from.NodeName}': node '{user.NodeName}' uses it as '{edge.Name}' and cannot change that child while open");
            }
        }
        foreach (var edge in moved)
            MoveEdge(edge, from, to);
        try
        {
            RefreshPermissions(to);
        }
        catch
        {
            foreach (var edge in moved)
                MoveEdge(edge, to, from);
            try
            {
                RefreshPermissions(from);
            }
            catch (BlockException)
            {
                // The permissions the node had before cannot conflict with themselves.
            }
            throw;
        }
        try
        {
            RefreshPermissions(from);
        }
        catch (BlockException)
        {
            // Losing users only relaxes the old node's permissions.
        }
    }

    /// <summary>Opens the backing file <paramref name="node"/>'s header names (read-only, with its own chain) and attaches it.</summary>
    internal async ValueTask OpenBackingFromHeaderAsync(BlockNode node)
    {
        if (node.Impl.BackingFileName is not { } name)
            return;
        string path = name;
        if (!Path.IsPathRooted(path) && Path.GetDirectoryName(node.Filename) is { Length: > 0 } dir)
            path = Path.Combine(dir, path);
        var backing = await OpenImageNodeAsync(path, new ImageOpenOptions
        {
            Format = node.Impl.BackingFileFormat,
            AllowProbing = node.Impl.BackingFileFormat is null,
            ReadOnly = true,
        }).ConfigureAwait(false);
        try
        {
            await SetBackingNodeAsync(node, backing).ConfigureAwait(false);
        }
        catch
        {
            await ReleaseNodeAsync(backing).ConfigureAwait(false);
            throw;
        }
    }
}
