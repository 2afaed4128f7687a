using System.Text.Json.Nodes;
using Block.Graph;
using Block.Io;
using Block.Qapi;

namespace Block.Drivers;

/// <summary>
/// The operations of one open node: what a driver does for requests that the generic request path has already
/// checked, aligned and split to fit <see cref="Limits"/>.
/// </summary>
/// <remarks>
/// <para>The request path (<see cref="BlockNode"/>) calls these methods only with offsets and lengths that are
/// multiples of <see cref="BlockLimits.RequestAlignment"/>, within <see cref="BlockLimits.MaxTransfer"/>, on a node
/// whose permissions allow the operation, and never after <see cref="DisposeAsync"/>. Methods may be called
/// concurrently from any number of threads.</para>
/// <para>What a driver does not support it declines with <see cref="Errno.ENOTSUP"/> (the defaults here), never with a
/// silent no-op: the request path then falls back where QEMU does (zero buffers for write-zeroes, nothing for
/// discard) and fails otherwise.</para>
/// </remarks>
public abstract class NodeDriver : IAsyncDisposable
{
    /// <summary>Creates the driver state for <paramref name="node"/>.</summary>
    protected NodeDriver(BlockNode node)
    {
        Node = node;
    }

    /// <summary>The node this driver serves.</summary>
    public BlockNode Node { get; }

    /// <summary>The request shapes this driver accepts.</summary>
    public virtual BlockLimits Limits => new();

    /// <summary>Write flags the driver honours itself; the request path emulates the rest (FUA by a flush).</summary>
    public virtual RequestFlags SupportedWriteFlags => RequestFlags.None;

    /// <summary>Write-zeroes flags the driver honours itself.</summary>
    public virtual RequestFlags SupportedZeroFlags => RequestFlags.None;

    /// <summary>The node's length in bytes.</summary>
    public abstract long Length { get; }

    /// <summary>Reads <paramref name="buffers"/>.Length bytes at <paramref name="offset"/>.</summary>
    public abstract ValueTask ReadAsync(long offset, IoVector buffers, RequestFlags flags);

    /// <summary>Writes <paramref name="buffers"/> at <paramref name="offset"/>.</summary>
    public virtual ValueTask WriteAsync(long offset, IoVector buffers, RequestFlags flags) =>
        ValueTask.FromException(new BlockException(Errno.ENOTSUP, $"Driver '{Node.DriverName}' does not support writes"));

    /// <summary>Makes <c>[offset, offset + length)</c> read as zeroes without a data buffer.</summary>
    public virtual ValueTask WriteZeroesAsync(long offset, long length, RequestFlags flags) =>
        ValueTask.FromException(new BlockException(Errno.ENOTSUP, "write-zeroes not supported"));

    /// <summary>Tells the storage that <c>[offset, offset + length)</c> is no longer needed.</summary>
    public virtual ValueTask DiscardAsync(long offset, long length) =>
        ValueTask.FromException(new BlockException(Errno.ENOTSUP, "discard not supported"));

    /// <summary>
    /// True if <see cref="FlushToOsAsync"/> flushes the children itself and decides what their failures mean (quorum's
    /// vote); the node then does not flush them again.
    /// </summary>
    public virtual bool FlushesChildren => false;

    /// <summary>Writes the driver's cached state (metadata) to its children. Children are flushed by the caller afterwards.</summary>
    public virtual ValueTask FlushToOsAsync() => default;

    /// <summary>Makes written data durable on the storage (protocol drivers: <c>fdatasync</c>).</summary>
    public virtual ValueTask FlushToDiskAsync() => default;

    /// <summary>
    /// Starts writing what the storage caches for this node towards the disk, without waiting and without making
    /// anything durable (protocol drivers on files: <c>sync_file_range(SYNC_FILE_RANGE_WRITE)</c>). The caller
    /// passes the hint on to the children afterwards; the default does nothing.
    /// </summary>
    public virtual ValueTask StartWritebackAsync() => default;

    /// <summary>
    /// The status of <c>[offset, offset + length)</c>, or of a prefix of it. The default says "all data, allocated
    /// here", which is right for drivers without sparse storage.
    /// </summary>
    public virtual ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length, bool wantZero) =>
        new(new BlockStatus(BlockStatusFlags.Data | BlockStatusFlags.Allocated, length));

    /// <summary>Changes the length. <paramref name="exact"/> false lets a protocol node keep a larger size.</summary>
    public virtual ValueTask TruncateAsync(long length, PreallocMode preallocation, bool exact) =>
        ValueTask.FromException(new BlockException(Errno.ENOTSUP, "Image format driver does not support resize"));

    /// <summary>
    /// Checks the image's metadata for consistency and, with <paramref name="repair"/>, repairs what it can
    /// (<c>qemu-img check</c>). Formats without metadata decline with ENOTSUP.
    /// </summary>
    public virtual ValueTask<ImageCheck> CheckAsync(CheckRepair repair) =>
        ValueTask.FromException<ImageCheck>(new BlockException(Errno.ENOTSUP, "This image format does not support checks"));

    /// <summary>
    /// <see cref="CheckAsync(CheckRepair)"/>, writing what it finds, one finding per line, to <paramref name="messages"/>
    /// in the words <c>qemu-img check</c> prints on stderr.
    /// </summary>
    public virtual ValueTask<ImageCheck> CheckAsync(CheckRepair repair, TextWriter? messages) => CheckAsync(repair);

    /// <summary>
    /// Records a new backing file name and format in the image (<c>qemu-img rebase -u</c>, commit, amend); null removes
    /// the backing file. The open backing node is not changed.
    /// </summary>
    public virtual ValueTask ChangeBackingFileAsync(string? backingFile, string? backingFormat) =>
        ValueTask.FromException(new BlockException(Errno.ENOTSUP, "Operation not supported"));

    /// <summary>
    /// Changes the image's format options in place (<c>qemu-img amend</c>, QMP <c>x-blockdev-amend</c>): the options of
    /// <see cref="BlockDriver.AmendOptions"/> that <paramref name="request"/> gives. Called on a writable node that
    /// nothing else is using. Formats that cannot amend decline with ENOTSUP.
    /// </summary>
    /// <exception cref="BlockException">An option the image cannot take, with QEMU's message. Changes that come
    /// before the failing one in QEMU's order may have been made, as in QEMU.</exception>
    public virtual ValueTask AmendAsync(ImageAmendRequest request, CancellationToken cancellationToken) =>
        ValueTask.FromException(new BlockException(Errno.ENOTSUP, $"Format driver '{Node.DriverName}' does not support option amendment"));

    /// <summary>True if <see cref="MakeEmptyAsync"/> is implemented (QEMU's <c>bdrv_make_empty</c> in the driver table).</summary>
    /// <remarks>Replication asks before it starts, as QEMU does, rather than failing at the first checkpoint.</remarks>
    public virtual bool CanMakeEmpty => false;

    /// <summary>
    /// Drops everything this layer holds, so that every read falls through to the backing file (<c>qemu-img commit</c>
    /// without <c>-d</c>). Formats that cannot do it decline with ENOTSUP.
    /// </summary>
    public virtual ValueTask MakeEmptyAsync() =>
        ValueTask.FromException(new BlockException(Errno.ENOTSUP, "Operation not supported"));

    /// <summary>The image's internal snapshots (empty for formats without them).</summary>
    public virtual IReadOnlyList<SnapshotInfo> Snapshots => [];

    /// <summary>
    /// Records the current disk state (and the VM state written with <see cref="WriteVmStateAsync"/>) as a new internal
    /// snapshot. <paramref name="snapshot"/>'s id is assigned by the driver when empty. Called with the node drained.
    /// </summary>
    /// <returns>The snapshot as recorded.</returns>
    public virtual ValueTask<SnapshotInfo> CreateSnapshotAsync(SnapshotInfo snapshot) =>
        ValueTask.FromException<SnapshotInfo>(new BlockException(Errno.ENOTSUP, "Operation not supported"));

    /// <summary>Reverts the disk to snapshot <paramref name="idOrName"/> (an id, else a name). Called with the node drained.</summary>
    public virtual ValueTask ApplySnapshotAsync(string idOrName) =>
        ValueTask.FromException(new BlockException(Errno.ENOTSUP, "Block driver does not support snapshots"));

    /// <summary>Deletes the snapshot matching <paramref name="id"/> and/or <paramref name="name"/>. Called with the node drained.</summary>
    public virtual ValueTask DeleteSnapshotAsync(string? id, string? name) =>
        ValueTask.FromException(new BlockException(Errno.ENOENT, "snapshot not found"));

    /// <summary>Makes a read-only node read snapshot <paramref name="id"/>/<paramref name="name"/> instead of the current state.</summary>
    public virtual ValueTask LoadSnapshotAsync(string? id, string? name) =>
        ValueTask.FromException(new BlockException(Errno.ENOTSUP, "Block driver does not support snapshots"));

    /// <summary>Reads saved VM state at <paramref name="position"/> (the area snapshots keep past the disk).</summary>
    public virtual ValueTask ReadVmStateAsync(long position, IoVector buffers) =>
        ValueTask.FromException(new BlockException(Errno.ENOTSUP, "This image format cannot store VM state"));

    /// <summary>Writes VM state at <paramref name="position"/>, to be captured by the next <see cref="CreateSnapshotAsync"/>.</summary>
    public virtual ValueTask WriteVmStateAsync(long position, IoVector buffers) =>
        ValueTask.FromException(new BlockException(Errno.ENOTSUP, "This image format cannot store VM state"));

    /// <summary>True if the image can store persistent dirty bitmaps (QEMU's <c>bdrv_supports_persistent_dirty_bitmap</c>).</summary>
    public virtual bool SupportsPersistentDirtyBitmaps => false;

    /// <summary>
    /// Checks that the image could store a new persistent dirty bitmap <paramref name="name"/> of
    /// <paramref name="granularity"/> bytes per bit when the node closes (QEMU's
    /// <c>bdrv_can_store_new_dirty_bitmap</c>). Formats without persistent bitmaps decline with ENOTSUP.
    /// </summary>
    /// <exception cref="BlockException">The image cannot store it; the message says why, in QEMU's words.</exception>
    public virtual ValueTask CanStoreNewDirtyBitmapAsync(string name, long granularity) =>
        ValueTask.FromException(new BlockException(Errno.ENOTSUP, $"Can't store persistent bitmaps to {BlockGraph.DeviceOrNodeName(Node)}: Operation not supported"));

    /// <summary>
    /// Removes the persistent dirty bitmap <paramref name="name"/> from the image now (a bitmap created since the open
    /// and not stored yet needs nothing). The node detaches its in-memory bitmap afterwards.
    /// </summary>
    public virtual ValueTask RemovePersistentDirtyBitmapAsync(string name) =>
        ValueTask.FromException(new BlockException(Errno.ENOTSUP, $"Can't remove persistent bitmaps from {BlockGraph.DeviceOrNodeName(Node)}: Operation not supported"));

    /// <summary>True if the node takes new children while open (QMP <c>x-blockdev-change</c> with <c>node</c>; quorum).</summary>
    public virtual bool CanAddChild => false;

    /// <summary>True if the node lets children go while open (QMP <c>x-blockdev-change</c> with <c>child</c>; quorum).</summary>
    public virtual bool CanRemoveChild => false;

    /// <summary>
    /// Adds <paramref name="child"/>, a node without parents, as a new child (QEMU's <c>bdrv_add_child</c>). Only
    /// called when <see cref="CanAddChild"/> is true; the caller guarantees that the child's content fits.
    /// </summary>
    public virtual ValueTask AddChildAsync(BlockNode child, CancellationToken cancellationToken) =>
        ValueTask.FromException(new BlockException(Errno.ENOTSUP, $"The node {BlockGraph.DeviceOrNodeName(Node)} does not support adding a child"));

    /// <summary>Detaches <paramref name="child"/> (QEMU's <c>bdrv_del_child</c>). Only called when <see cref="CanRemoveChild"/> is true.</summary>
    public virtual ValueTask RemoveChildAsync(BlockChild child, CancellationToken cancellationToken) =>
        ValueTask.FromException(new BlockException(Errno.ENOTSUP, $"The node {BlockGraph.DeviceOrNodeName(Node)} does not support removing a child"));

    /// <summary>Format-specific information for <see cref="ImageInfo"/>.</summary>
    public virtual ImageInfoSpecific? SpecificInfo => null;

    /// <summary>Cluster size for <see cref="ImageInfo.ClusterSize"/>, for formats with clusters.</summary>
    public virtual long? ClusterSize => null;

    /// <summary>
    /// True if the format can store data only as compressed whole clusters (VMDK streamOptimized; QEMU's
    /// <c>needs_compressed_writes</c>): a copy into such an image must write each cluster of <see cref="ClusterSize"/>
    /// bytes whole, once, and may skip only clusters that are entirely zero.
    /// </summary>
    public virtual bool NeedsCompressedWrites => false;

    /// <summary>The backing file name as the image records it (relative names stay relative), or null.</summary>
    public virtual string? BackingFileName => null;

    /// <summary>The backing file's format as the image records it, or null.</summary>
    public virtual string? BackingFileFormat => null;

    /// <summary>Where internal snapshots keep VM state (guest offset past the disk); 0 for formats without any.</summary>
    public virtual long VmStateOffset => 0;

    /// <summary>True if the image's data is encrypted (<see cref="ImageInfo.Encrypted"/>, <c>encrypted: yes</c>).</summary>
    public virtual bool IsEncrypted => false;

    /// <summary>
    /// True while an encrypted image opened with <see cref="Options.BlockdevOptions.KeyLater"/> waits for the key that
    /// <see cref="SetKey"/> gives (QEMU 2.8's <c>encryption_key_missing</c>): its data can be neither read nor written.
    /// </summary>
    public virtual bool IsKeyMissing => false;

    /// <summary>
    /// Gives an encrypted image its key from <paramref name="password"/> (QEMU 2.8's <c>block_passwd</c>), replacing
    /// any it had. Called on a drained node whose <see cref="IsEncrypted"/> is true.
    /// </summary>
    /// <exception cref="BlockException">"Password incorrect": the format takes no password this way.</exception>
    public virtual void SetKey(string password) => throw new BlockException(Errno.EINVAL, "Password incorrect");

    /// <summary>
    /// True if a newly created image reads as zeroes everywhere (QEMU's <c>bdrv_has_zero_init</c>), so that a copy
    /// into it may skip zero ranges.
    /// </summary>
    /// <remarks>Encrypted formats answer false: an unwritten sector decrypts to noise, so zeroes must be written.</remarks>
    public virtual bool HasZeroInit => true;

    /// <summary>True if the image was not closed cleanly.</summary>
    public virtual bool? DirtyFlag => null;

    /// <summary>
    /// Whether the driver reports driver information (QEMU's <c>bdrv_get_info</c>); <c>qemu-img info</c> shows a
    /// <c>dirty-flag</c> only for nodes that do. Pass-through formats (raw) answer for their file.
    /// </summary>
    public virtual bool HasDriverInfo => true;

    /// <summary>Host bytes the node's storage occupies; by default its primary child's.</summary>
    public virtual long? AllocatedSize => Node.PrimaryChild?.Node.AllocatedSize;

    /// <summary>
    /// The node's file name as QEMU shows it (<c>filename</c> of <c>ImageInfo</c>); by default the primary child's,
    /// except that a format over a child known only by a <c>json:</c> name (an iscsi LUN) is named
    /// <c>json:{"driver": format, "file": child}</c>, as QEMU's <c>bdrv_refresh_filename</c> names it.
    /// </summary>
    public virtual string Filename
    {
        get
        {
            var child = Node.PrimaryChild;
            string name = child?.Node.Filename ?? string.Empty;
            if (child is null || Node.Driver.Kind != BlockDriverKind.Format || !name.StartsWith("json:", StringComparison.Ordinal) || JsonNode.Parse(name[5..]) is not JsonObject file)
                return name;
            return "json:" + QemuJson.Compact(new JsonObject { ["driver"] = Node.DriverName, ["file"] = file });
        }
    }

    /// <summary>
    /// <paramref name="node"/> as its options would open it again, for a filter's <c>json:{…}</c> name (quorum's
    /// children, replication's file): its own <c>json:</c> name, or its driver over its file, or its file name.
    /// </summary>
    internal static JsonObject OpenOptionsOf(BlockNode node)
    {
        string name = node.Filename;
        if (name.StartsWith("json:", StringComparison.Ordinal))
            return JsonNode.Parse(name[5..])!.AsObject();
        if (node.Driver.Kind != BlockDriverKind.Protocol && node.PrimaryChild is { } file)
            return new JsonObject { ["driver"] = node.DriverName, ["file"] = OpenOptionsOf(file.Node) };
        return new JsonObject { ["driver"] = node.DriverName, ["filename"] = name };
    }

    /// <summary>
    /// The permissions this node asks of <paramref name="child"/>, given what its own parents ask of it
    /// (<paramref name="parentPermissions"/>) and let others do (<paramref name="parentShared"/>).
    /// </summary>
    /// <remarks>The defaults follow QEMU's: filters pass everything through; a format's storage is read always,
    /// written and resized when the node is writable, and not shared for writing unless force-share is set;
    /// a backing node is only read, and shared for writing when the parent's own users share writing.</remarks>
    public virtual (BlockPermissions Permissions, BlockPermissions Shared) GetChildPermissions(
        BlockChild child, BlockPermissions parentPermissions, BlockPermissions parentShared) =>
        DefaultChildPermissions(Node, child.Role, parentPermissions, parentShared);

    /// <summary>QEMU's default child permissions for a child of <paramref name="parent"/> with <paramref name="role"/>.</summary>
    public static (BlockPermissions Permissions, BlockPermissions Shared) DefaultChildPermissions(
        BlockNode parent, ChildRole role, BlockPermissions parentPermissions, BlockPermissions parentShared)
    {
        if ((role & ChildRole.Filtered) != 0)
            return (parentPermissions, parentShared);

        var shared = BlockPermissions.ConsistentRead | BlockPermissions.WriteUnchanged;
        if (parent.ForceShare)
            shared = BlockPermissions.All;
        if ((role & ChildRole.Cow) != 0)
        {
            // A parent that lets others change what it reads can live with a backing file that changes too: this is
            // what lets a commit write into the base below the images that use it as their backing file.
            if ((parentShared & BlockPermissions.Write) != 0)
                shared |= BlockPermissions.Write | BlockPermissions.Resize;
            return (BlockPermissions.ConsistentRead, shared);
        }

        var perm = BlockPermissions.ConsistentRead;
        if (!parent.ReadOnly)
            perm |= BlockPermissions.Write | BlockPermissions.Resize;
        return (perm, shared);
    }

    /// <summary>
    /// Applies the node's cumulative permissions: protocol drivers lock their file against other processes here.
    /// Throws (changing nothing) if another user holds a conflicting permission.
    /// </summary>
    public virtual void SetPermissions(BlockPermissions permissions, BlockPermissions shared)
    {
    }

    /// <summary>
    /// False while the node's own medium is absent: a host CD-ROM drive with no disc (QEMU's <c>bdrv_is_inserted</c>).
    /// <see cref="Graph.BlockNode.IsInserted"/> also asks the children.
    /// </summary>
    public virtual bool IsInserted => true;

    /// <summary>Opens (<paramref name="eject"/> true) or closes the tray of the host drive under the node (QEMU's
    /// <c>bdrv_eject</c>, which a guest's START STOP UNIT reaches); nothing for media without a tray.</summary>
    public virtual void Eject(bool eject)
    {
    }

    /// <summary>Locks or unlocks the medium in the host drive under the node (QEMU's <c>bdrv_lock_medium</c>, which a
    /// guest's PREVENT ALLOW MEDIUM REMOVAL reaches); nothing for media that cannot be locked.</summary>
    public virtual void LockMedium(bool locked)
    {
    }

    /// <summary>
    /// True if the driver looks up its children's nodes through their edges at every request, so that a job's
    /// switch-over (mirror, active commit) may move one of its child edges to another node while it is open.
    /// </summary>
    /// <remarks>Format drivers keep their file node for metadata they cache, so the default is false; replication's
    /// failover needs it, as its commit leaves the filter over the secondary disk.</remarks>
    public virtual bool FollowsChildReplacement => false;

    /// <summary>True for a driver that acts on debug events (<c>blkdebug</c>); events pass through other nodes to their primary child.</summary>
    public virtual bool HandlesDebugEvents => false;

    /// <summary>
    /// Acts on a debug event that a driver above reported (QEMU's <c>bdrv_debug_event</c>); only called when
    /// <see cref="HandlesDebugEvents"/>. The returned task completes when the reporting request may go on (a
    /// breakpoint holds it).
    /// </summary>
    public virtual ValueTask DebugEventAsync(Blkdebug.BlkdebugEvent debugEvent) => default;

    /// <summary>
    /// Sets a breakpoint (QEMU's <c>bdrv_debug_breakpoint</c>): the next request that reports
    /// <paramref name="debugEvent"/> is suspended under <paramref name="tag"/> until resumed, and
    /// <paramref name="suspended"/> is called, on the request's own flow, when that happens. Only called when
    /// <see cref="HandlesDebugEvents"/>.
    /// </summary>
    public virtual void AddDebugBreakpoint(Blkdebug.BlkdebugEvent debugEvent, string tag, Action<string>? suspended) =>
        throw new BlockException(Errno.ENOTSUP, "Operation not supported");

    /// <summary>Removes the breakpoints tagged <paramref name="tag"/> and resumes the requests they hold; returns how many were resumed.</summary>
    public virtual int RemoveDebugBreakpoint(string tag) => throw new BlockException(Errno.ENOTSUP, "Operation not supported");

    /// <summary>Resumes the request suspended most recently under <paramref name="tag"/>.</summary>
    public virtual void ResumeDebugRequest(string tag) => throw new BlockException(Errno.ENOTSUP, "Operation not supported");

    /// <summary>True while a request is suspended under <paramref name="tag"/>.</summary>
    public virtual bool IsDebugRequestSuspended(string tag) => false;

    /// <summary>Releases the driver's resources. The node is drained and has no requests in flight.</summary>
    public virtual ValueTask DisposeAsync()
    {
        GC.SuppressFinalize(this);
        return default;
    }
}
