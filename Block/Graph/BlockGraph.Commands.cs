using System.Text.Json.Nodes;
using Block.Bitmaps;
using Block.Drivers;
using Block.Qapi;

namespace Block.Graph;

/// <summary>
/// The schema's graph commands as methods: lookups, resize, write threshold, dirty bitmaps, backing file change,
/// external snapshots and child changes. Each takes the command's arguments (wire names in camel case, optional ones
/// nullable) and fails as QEMU 7.2 fails, with its texts and in its order of checks, so that a QMP front end only
/// decodes, calls and encodes.
/// </summary>
public sealed partial class BlockGraph
{
    /// <summary>
    /// QEMU's "device or node-name" lookup (<c>bdrv_lookup_bs</c>): the root of the backend named
    /// <paramref name="device"/>, else the node named <paramref name="nodeName"/>. Commands that take one name for
    /// both pass it twice.
    /// </summary>
    /// <exception cref="BlockException">ENOMEDIUM "Device 'x' has no medium": the backend exists but is empty.</exception>
    /// <exception cref="BlockNotFoundException">"Cannot find device='x' nor node-name='y'" (GenericError).</exception>
    public BlockNode LookupNode(string? device, string? nodeName)
    {
        if (device != null && FindBackend(device) is { } backend)
            return backend.Root ?? throw new BlockException(Errno.ENOMEDIUM, $"Device '{device}' has no medium");
        if (nodeName != null && FindNode(nodeName) is { } node)
            return node;
        throw new BlockNotFoundException($"Cannot find device='{device}' nor node-name='{nodeName}'");
    }

    /// <summary>
    /// <see cref="LookupNode"/> with one name for both, then the node must be a root: no node uses it, only backends
    /// (QEMU's <c>qmp_get_root_bs</c>).
    /// </summary>
    /// <exception cref="BlockException">"Need a root block node", or a lookup error.</exception>
    public BlockNode LookupRootNode(string name)
    {
        var node = LookupNode(name, name);
        // A node a job holds has the job as a parent too, as in QEMU (where only backends are root parents).
        if (node.Parents.Any(p => p.Parent is BlockNode || Block.Jobs.BlockJob.HolderOf(p) != null))
            throw new BlockException(Errno.EINVAL, "Need a root block node");
        return node;
    }

    /// <summary>The backend named <paramref name="device"/> (QEMU's <c>qmp_get_blk</c> by name).</summary>
    /// <exception cref="BlockNotFoundException">"Device 'x' not found", class DeviceNotFound.</exception>
    public BlockBackend LookupBackend(string device) =>
        FindBackend(device) ?? throw new BlockNotFoundException($"Device '{device}' not found", QmpErrorClass.DeviceNotFound);

    /// <summary>
    /// Resizes a node while guests use it (QMP <c>block_resize</c>): the graph is drained, the node truncated (grown
    /// or shrunk, no preallocation), its bitmaps follow, and backends see the new length.
    /// </summary>
    /// <param name="device">A backend whose root to resize, or null.</param>
    /// <param name="nodeName">A node to resize, or null (looked up as <see cref="LookupNode"/> does).</param>
    /// <param name="size">The new length in bytes.</param>
    /// <param name="cancellationToken">Cancels waiting for the drain.</param>
    /// <exception cref="BlockException">QEMU's messages: the lookup's, "Parameter 'size' expects a >0 size", "Device 'x' is
    /// in use" (an overlay uses the node as its backing node), a permission conflict with another user that does not
    /// share resizing, "Image is read-only", "Image format driver does not support resize", and the format's own.</exception>
    public async ValueTask ResizeAsync(string? device, string? nodeName, long size, CancellationToken cancellationToken = default)
    {
        var node = LookupNode(device, nodeName);
        if (size < 0)
            throw new BlockOptionsException("Parameter 'size' expects a >0 size");
        if (FindBackingUser(node) != null)
            throw new BlockException(Errno.EBUSY, $"Device '{device ?? "(null)"}' is in use");

        // QEMU resizes through a temporary unnamed backend that takes the resize permission.
        var edge = AttachChild(new CommandUser(), "root", node, ChildRole.Image, (BlockPermissions.Resize, BlockPermissions.All));
        try
        {
            cancellationToken.ThrowIfCancellationRequested();
            // QEMU drains the node only: jobs on other nodes go on.
            await using var drained = await BeginDrainAsync(node).ConfigureAwait(false);
            await node.TruncateAsync(size, PreallocMode.Off, exact: false).ConfigureAwait(false);
        }
        finally
        {
            await DetachAsync(edge).ConfigureAwait(false);
        }
        NotifyResized(node);
    }

    /// <summary>
    /// Sets a node's write threshold (QMP <c>block-set-write-threshold</c>); 0 disables it, a new value replaces the
    /// old. The first write, write-zeroes or discard on the node reaching past it raises
    /// <see cref="Events.BlockWriteThresholdEvent"/>, once.
    /// </summary>
    /// <exception cref="BlockNotFoundException">"Device 'x' not found" (GenericError): node names only.</exception>
    public void SetWriteThreshold(string nodeName, ulong writeThreshold)
    {
        var node = FindNode(nodeName) ?? throw new BlockNotFoundException($"Device '{nodeName}' not found");
        node.WriteThreshold = unchecked((long)writeThreshold);
    }

    /// <summary>
    /// Creates a dirty bitmap on a node or on a backend's root (QMP <c>block-dirty-bitmap-add</c>, with QEMU 2.10's
    /// <c>persistent</c> and 4.0's <c>disabled</c>). A persistent bitmap is stored in the image when the node closes.
    /// </summary>
    /// <param name="node">A backend or node name.</param>
    /// <param name="name">The bitmap's name, not empty and unused on the node.</param>
    /// <param name="granularity">Bytes per bit (a power of two, at least 512); null for the node's default.</param>
    /// <param name="persistent">Store the bitmap in the image (qcow2 v3).</param>
    /// <param name="disabled">Create it not recording writes.</param>
    /// <exception cref="BlockException">"Bitmap name cannot be empty", the lookup's errors, "Granularity must be power
    /// of 2 and at least 512", the format's reason it cannot store the bitmap, "Bitmap already exists: x".</exception>
    public ValueTask<DirtyBitmap> AddDirtyBitmapAsync(string node, string name, uint? granularity = null, bool? persistent = null, bool? disabled = null)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.Length == 0)
            throw new BlockException(Errno.EINVAL, "Bitmap name cannot be empty");
        var target = LookupNode(node, node);
        return target.AddDirtyBitmapAsync(name, granularity, persistent ?? false, disabled ?? false);
    }

    /// <summary>
    /// Removes a dirty bitmap (QMP <c>block-dirty-bitmap-remove</c>); a persistent one leaves the image at once.
    /// </summary>
    /// <exception cref="BlockException">"Node 'x' not found", "Dirty bitmap 'x' not found", and the bitmap's state
    /// (busy, read-only).</exception>
    public ValueTask RemoveDirtyBitmapAsync(string node, string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return FindBitmapNode(node).RemoveDirtyBitmapAsync(name);
    }

    /// <summary>Clears every bit of a dirty bitmap (QMP <c>block-dirty-bitmap-clear</c>).</summary>
    /// <exception cref="BlockException">"Node 'x' not found", "Dirty bitmap 'x' not found", and the bitmap's state
    /// (busy, read-only, inconsistent).</exception>
    public void ClearDirtyBitmap(string node, string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        FindBitmapNode(node).ClearDirtyBitmap(name);
    }

    /// <summary>
    /// Rewrites the backing file name recorded in an image of a chain while it is in use (QMP
    /// <c>change-backing-file</c>). The name is not checked and nothing is reopened: the open backing node stays.
    /// As QEMU 7.2 does, the backing format recorded with it is the image's own format name. A read-only image is made
    /// writable for the change and read-only again after it.
    /// </summary>
    /// <param name="device">The root of the chain (a backend or a node no other node uses).</param>
    /// <param name="imageNodeName">The image to change: the root or an image below it.</param>
    /// <param name="backingFile">The new name, recorded as given.</param>
    /// <param name="cancellationToken">Cancels the reopen.</param>
    /// <exception cref="BlockException">QEMU's messages: the lookups', "Need a root block node", "not allowing backing
    /// file change on an image without a backing file", "'x' and image file are not in the same chain", the reopen's,
    /// and "Could not change backing file to 'x': &lt;errno text&gt;".</exception>
    public async ValueTask ChangeBackingFileAsync(string device, string imageNodeName, string backingFile, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(backingFile);
        var root = LookupRootNode(device);
        var image = LookupNode(null, imageNodeName);
        if (image.Driver.Kind != BlockDriverKind.Filter && image.Backing is null)
            throw new BlockException(Errno.EINVAL, "not allowing backing file change on an image without a backing file");
        bool inChain = false;
        for (var n = root; n != null; n = ChainNext(n))
        {
            if (ReferenceEquals(n, image))
            {
                inChain = true;
                break;
            }
        }
        if (!inChain)
            throw new BlockException(Errno.EINVAL, $"'{device}' and image file are not in the same chain");

        bool readOnly = image.ReadOnly;
        if (readOnly)
            await ReopenAsync(image, readOnly: false, cancellationToken).ConfigureAwait(false);
        BlockException? error = null;
        try
        {
            await using var drained = await BeginDrainAsync().ConfigureAwait(false);
            await image.Impl.ChangeBackingFileAsync(backingFile, image.DriverName).ConfigureAwait(false);
        }
        catch (BlockException e)
        {
            error = new BlockException(e.Errno, $"Could not change backing file to '{backingFile}': {ErrnoText.Describe(e.Errno)}", e);
        }
        if (readOnly)
        {
            try
            {
                await ReopenAsync(image, readOnly: true, CancellationToken.None).ConfigureAwait(false);
            }
            catch (BlockException e)
            {
                error ??= e;
            }
        }
        if (error != null)
            throw error;
    }

    /// <summary>
    /// Takes an external snapshot (QMP <c>blockdev-snapshot-sync</c>): creates the overlay file (or, with
    /// <see cref="NewImageMode.Existing"/>, opens it as it is), opens it without its backing file, and makes it the active
    /// layer above the node, live. Every parent of the node, backends included, then uses the overlay, whose backing
    /// node is the old node, reopened read-only.
    /// </summary>
    /// <remarks>
    /// The created overlay is what QEMU creates: the old node's length, its file name as the backing file and its
    /// format as the backing format, the format's default options. When the old node had no parent (a node added with
    /// <see cref="AddNodeAsync"/> that nothing uses) the overlay stays in the graph as a node deleted with
    /// <see cref="DeleteNodeAsync"/>; QEMU 7.2 drops it at once, which is a bug not copied here.
    /// </remarks>
    /// <param name="device">A backend whose root to snapshot, or null.</param>
    /// <param name="nodeName">A node to snapshot, or null; then <paramref name="snapshotNodeName"/> is required.</param>
    /// <param name="snapshotFile">The overlay's file.</param>
    /// <param name="snapshotNodeName">The overlay's node name, or null for a generated one.</param>
    /// <param name="format">The overlay's format (default qcow2, also for an existing file).</param>
    /// <param name="mode">Create the file (the default) or open an existing one.</param>
    /// <param name="cancellationToken">Cancels the creation and the open.</param>
    /// <returns>The overlay.</returns>
    /// <exception cref="BlockException">QEMU's messages, in its order (see the command table).</exception>
    public async ValueTask<BlockNode> SnapshotSyncAsync(string? device, string? nodeName, string snapshotFile, string? snapshotNodeName = null,
        string? format = null, NewImageMode? mode = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(snapshotFile);
        var old = LookupNode(device, nodeName);
        BlockNode overlay;
        await using (var drained = await BeginDrainAsync().ConfigureAwait(false))
        {
            await PrepareSnapshotAsync(old).ConfigureAwait(false);
            if (nodeName != null && snapshotNodeName is null)
                throw new BlockOptionsException("New overlay node-name missing");
            if (snapshotNodeName != null && (FindBackend(snapshotNodeName) != null || FindNode(snapshotNodeName) != null))
                throw new BlockOptionsException("New overlay node-name already in use");
            format ??= "qcow2";
            if ((mode ?? NewImageMode.AbsolutePaths) != NewImageMode.Existing)
                await CreateOverlayFileAsync(snapshotFile, format, old, cancellationToken).ConfigureAwait(false);

            var extra = new JsonObject();
            if (snapshotNodeName != null)
                extra["node-name"] = snapshotNodeName;
            overlay = await OpenImageNodeAsync(snapshotFile, new ImageOpenOptions
            {
                Format = format,
                NoBacking = true,
                ReadOnly = old.ReadOnly,
                CacheDirect = old.CacheDirect,
                NoFlush = old.CacheNoFlush,
                Discard = old.Discard,
                ExtraOptions = extra,
            }, cancellationToken).ConfigureAwait(false);
            try
            {
                AppendOverlay(overlay, old);
            }
            catch
            {
                await ReleaseNodeAsync(overlay).ConfigureAwait(false);
                throw;
            }
            if (overlay.ParentCount == 0)
                overlay.IsMonitorOwned = true;
        }
        await MakeSnapshotReadOnlyAsync(old).ConfigureAwait(false);
        return overlay;
    }

    /// <summary>
    /// Takes an external snapshot onto an overlay that is already open (QMP <c>blockdev-snapshot</c>), usually one
    /// added with <see cref="AddNodeAsync"/> without a backing node (<c>"backing": null</c>): the overlay becomes the
    /// active layer as in <see cref="SnapshotSyncAsync"/>. Its image is not changed: it must already name the right
    /// backing file.
    /// </summary>
    /// <param name="node">The node (or backend) to snapshot.</param>
    /// <param name="overlay">The overlay node (or backend).</param>
    /// <param name="cancellationToken">Cancels waiting for the drain.</param>
    /// <exception cref="BlockException">QEMU's messages: the lookups', "Node 'x' is busy: …", "An IO error has
    /// occurred", "The overlay is already in use", "Filters cannot be used as overlays", "The overlay already has a
    /// backing image", "The overlay does not support backing images".</exception>
    public async ValueTask SnapshotAsync(string node, string overlay, CancellationToken cancellationToken = default)
    {
        var old = LookupNode(node, node);
        cancellationToken.ThrowIfCancellationRequested();
        await using (var drained = await BeginDrainAsync().ConfigureAwait(false))
        {
            await PrepareSnapshotAsync(old).ConfigureAwait(false);
            var top = LookupNode(overlay, overlay);
            AppendOverlay(top, old);
        }
        await MakeSnapshotReadOnlyAsync(old).ConfigureAwait(false);
    }

    /// <summary>
    /// Adds a node to a parent, or removes a child from it, while open (QMP <c>x-blockdev-change</c>): exactly one of
    /// <paramref name="child"/> (the child name to remove) and <paramref name="node"/> (a node without parents to add).
    /// Only drivers that take children at run time (quorum) accept it.
    /// </summary>
    /// <exception cref="BlockException">QEMU's messages: the lookup's, "The parameters child and node are in conflict",
    /// "Either child or node must be specified", "Node 'x' does not have child 'y'", "Node 'x' not found", "The node x
    /// does not support adding a child" / "… removing a child", "The node x already has a parent".</exception>
    public async ValueTask ChangeChildAsync(string parent, string? child, string? node, CancellationToken cancellationToken = default)
    {
        var parentNode = LookupNode(parent, parent);
        if ((child is null) == (node is null))
        {
            throw new BlockOptionsException(child != null
                ? "The parameters child and node are in conflict"
                : "Either child or node must be specified");
        }
        if (child != null)
        {
            var edge = parentNode.GetChild(child) ?? throw new BlockException(Errno.ENOENT, $"Node '{parent}' does not have child '{child}'");
            if (!parentNode.Impl.CanRemoveChild)
                throw new BlockException(Errno.ENOTSUP, $"The node {DeviceOrNodeName(parentNode)} does not support removing a child");
            await using var drained = await BeginDrainAsync().ConfigureAwait(false);
            await parentNode.Impl.RemoveChildAsync(edge, cancellationToken).ConfigureAwait(false);
        }
        else
        {
            var newChild = FindNode(node!) ?? throw new BlockNotFoundException($"Node '{node}' not found");
            if (!parentNode.Impl.CanAddChild)
                throw new BlockException(Errno.ENOTSUP, $"The node {DeviceOrNodeName(parentNode)} does not support adding a child");
            if (newChild.ParentCount != 0)
                throw new BlockException(Errno.EBUSY, $"The node {newChild.NodeName} already has a parent");
            await using var drained = await BeginDrainAsync().ConfigureAwait(false);
            await parentNode.Impl.AddChildAsync(newChild, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// How QEMU names a node in messages (<c>bdrv_get_device_or_node_name</c>): the name of a named backend using it
    /// (the newest), else its node name.
    /// </summary>
    public static string DeviceOrNodeName(BlockNode node)
    {
        ArgumentNullException.ThrowIfNull(node);
        var parents = node.Parents;
        for (int i = parents.Count - 1; i >= 0; i--)
        {
            if (parents[i].Parent is BlockBackend { Name.Length: > 0 } backend)
                return backend.Name;
        }
        return node.NodeName;
    }

    /// <summary>The node that uses <paramref name="node"/> as its backing node (the newest such), or null.</summary>
    private static BlockNode? FindBackingUser(BlockNode node)
    {
        var parents = node.Parents;
        for (int i = parents.Count - 1; i >= 0; i--)
        {
            if ((parents[i].Role & ChildRole.Cow) != 0 && parents[i].Parent is BlockNode overlay)
                return overlay;
        }
        return null;
    }

    /// <summary>
    /// QEMU blocks most operations on a node an overlay uses as its backing node (deleting it, snapshotting it…) with
    /// "Node 'x' is busy: node is used as backing hd of 'y'".
    /// </summary>
    private static void ThrowIfUsedAsBacking(BlockNode node)
    {
        if (FindBackingUser(node) is { } overlay)
        {
            throw new BlockException(Errno.EBUSY,
                $"Node '{DeviceOrNodeName(node)}' is busy: node is used as backing hd of '{DeviceOrNodeName(overlay)}'");
        }
    }

    /// <summary>The next image of a chain: the backing node, or a filter's child (QEMU's <c>bdrv_filter_or_cow_bs</c>).</summary>
    private static BlockNode? ChainNext(BlockNode node) =>
        node.Backing?.Node ?? (node.Driver.Kind == BlockDriverKind.Filter ? node.PrimaryChild?.Node : null);

    /// <summary>QEMU's bitmap lookup: a backend or node by one name, else "Node 'x' not found".</summary>
    private BlockNode FindBitmapNode(string node)
    {
        ArgumentNullException.ThrowIfNull(node);
        if (FindBackend(node)?.Root is { } root)
            return root;
        return FindNode(node) ?? throw new BlockNotFoundException($"Node '{node}' not found");
    }

    /// <summary>The checks on the node to snapshot, in a drained section: not used as a backing node, flushed.</summary>
    private static async ValueTask PrepareSnapshotAsync(BlockNode old)
    {
        ThrowIfUsedAsBacking(old);
        if (!old.ReadOnly)
        {
            try
            {
                await old.FlushAsync().ConfigureAwait(false);
            }
            catch (BlockException e)
            {
                throw new BlockException(Errno.EIO, "An IO error has occurred", e);
            }
        }
    }

    /// <summary>
    /// Creates an external snapshot's overlay as QEMU's <c>bdrv_img_create</c> does: the format must take a backing
    /// file, the backing file (the old node's file name, relative to the overlay's directory) must open, and the
    /// overlay gets the old node's length.
    /// </summary>
    private async ValueTask CreateOverlayFileAsync(string filename, string format, BlockNode old, CancellationToken cancellationToken)
    {
        var driver = Drivers.Find(format) ?? throw new BlockOptionsException($"Unknown file format '{format}'");
        if (!driver.CanCreate)
            throw new BlockException(Errno.ENOTSUP, $"Format driver '{format}' does not support image creation");
        var known = CreateOptionsFor(driver, filename);
        if (!known.Any(o => o.Name == "backing_file"))
            throw new BlockOptionsException($"Backing file not supported for file format '{format}'");
        if (!known.Any(o => o.Name == "backing_fmt"))
            throw new BlockOptionsException($"Backing file format not supported for file format '{format}'");
        string backingFile = old.Filename;
        if (backingFile == filename)
            throw new BlockOptionsException("Error: Trying to create an image with the same filename as the backing file");
        if (backingFile.Length == 0)
            throw new BlockOptionsException("Expected backing file name, got empty string");

        string backingPath = backingFile;
        if (!Path.IsPathRooted(backingFile) && !backingFile.StartsWith("json:", StringComparison.Ordinal) && !backingFile.Contains("://", StringComparison.Ordinal))
        {
            string? dir = Path.GetDirectoryName(filename);
            if (!string.IsNullOrEmpty(dir))
                backingPath = Path.Combine(dir, backingFile);
        }
        var check = await OpenImageNodeAsync(backingPath, new ImageOpenOptions
        {
            Format = old.DriverName, ReadOnly = true, ForceShare = true, NoBacking = true, NoIo = true,
        }, cancellationToken).ConfigureAwait(false);
        await ReleaseNodeAsync(check).ConfigureAwait(false);

        var options = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["size"] = old.Length.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["backing_file"] = backingFile,
            ["backing_fmt"] = old.DriverName,
        };
        await CreateImageAsync(format, filename, options, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Makes <paramref name="overlay"/> the active layer above <paramref name="old"/> (QEMU's <c>bdrv_append</c>) after
    /// QEMU's checks on the overlay. Called drained. The edges move and the permissions are computed once, together,
    /// so that the old node's writers never meet the overlay's read-only use of it; on a conflict everything is undone.
    /// </summary>
    private void AppendOverlay(BlockNode overlay, BlockNode old)
    {
        if ((overlay.Permissions & BlockPermissions.ConsistentRead) != 0)
            throw new BlockException(Errno.EBUSY, "The overlay is already in use");
        if (overlay.Driver.Kind == BlockDriverKind.Filter)
            throw new BlockException(Errno.EINVAL, "Filters cannot be used as overlays");
        if (overlay.Backing != null)
            throw new BlockException(Errno.EINVAL, "The overlay already has a backing image");
        if (!overlay.Driver.SupportsBacking)
            throw new BlockException(Errno.ENOTSUP, "The overlay does not support backing images");
        if (ReferenceEquals(overlay, old) || IsBelow(old, overlay))
            throw new BlockException(Errno.EINVAL, $"Making '{old.NodeName}' a backing file of '{overlay.NodeName}' would create a cycle");

        var moved = old.Parents;
        foreach (var edge in moved)
        {
            // Format and filter drivers keep the node of their file child; only backends and backing edges (which
            // drivers read at each request) can be moved to another node while open.
            if (edge.Parent is BlockNode user && (edge.Role & ChildRole.Cow) == 0)
            {
                throw new BlockException(Errno.ENOTSUP,
                    $"Cannot put an overlay above node '{old.NodeName}': node '{user.NodeName}' uses it as '{edge.Name}' and cannot change that child while open");
            }
        }

        var backing = new BlockChild(overlay, "backing", old, ChildRole.Cow);
        foreach (var edge in moved)
            MoveEdge(edge, old, overlay);
        old.AddParentEdge(backing);
        overlay.AddChildEdge(backing);
        try
        {
            RefreshPermissions(overlay);
        }
        catch
        {
            overlay.RemoveChildEdge(backing);
            old.RemoveParentEdge(backing);
            foreach (var edge in moved)
                MoveEdge(edge, overlay, old);
            try
            {
                RefreshPermissions(old);
            }
            catch (BlockException)
            {
                // The permissions the old node had before cannot conflict with themselves.
            }
            throw;
        }
    }

    private static void MoveEdge(BlockChild edge, BlockNode from, BlockNode to)
    {
        from.RemoveParentEdge(edge);
        edge.Node = to;
        to.AddParentEdge(edge);
        if (edge.Parent is BlockBackend backend)
            backend.SetRoot(edge);
    }

    /// <summary>True if <paramref name="node"/> is in the subtree below <paramref name="top"/>.</summary>
    private static bool IsBelow(BlockNode node, BlockNode top)
    {
        foreach (var child in top.Children)
        {
            if (ReferenceEquals(child.Node, node) || IsBelow(node, child.Node))
                return true;
        }
        return false;
    }

    /// <summary>
    /// The snapshot's old node, now only a backing node, becomes read-only as in QEMU. QEMU ignores a failure here;
    /// it is reported as a warning and the snapshot stands.
    /// </summary>
    private async ValueTask MakeSnapshotReadOnlyAsync(BlockNode old)
    {
        try
        {
            await ReopenAsync(old, readOnly: true).ConfigureAwait(false);
        }
        catch (BlockException e)
        {
            Warn($"could not reopen '{old.NodeName}' read-only after the snapshot: {e.Message}");
        }
    }

    /// <summary>The user a command attaches for its duration (QEMU's temporary, unnamed backend).</summary>
    private sealed class CommandUser : IBlockParent
    {
        public string ParentDescription => "an unnamed block device";
    }
}
