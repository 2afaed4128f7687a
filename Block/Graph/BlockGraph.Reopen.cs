using Block.Drivers;
using Block.Options;

namespace Block.Graph;

/// <summary>Reopening a node with another mode.</summary>
public sealed partial class BlockGraph
{
    private const BlockPermissions WritePermissions = BlockPermissions.Write | BlockPermissions.WriteUnchanged | BlockPermissions.Resize;

    /// <summary>
    /// Makes <paramref name="node"/> read-write or read-only in place (QEMU's <c>bdrv_reopen_set_read_only</c>, which a
    /// commit uses to write into a backing file): the node's driver is closed and opened again in the new mode under the
    /// same <see cref="BlockNode"/>, so its parents, backends, name and statistics stay.
    /// </summary>
    /// <remarks>
    /// <para>Children that the node's options name by node name and that nothing else holds (the protocol node under an
    /// image opened by file name) are reopened with it, before it when it becomes writable and after it when it becomes
    /// read-only, so that each file is opened (and locked) in the mode its user needs. Children the driver opens itself
    /// (a backing file named in the image) are opened anew by the driver.</para>
    /// <para>The graph is drained meanwhile. If the node cannot be opened in the new mode (another process holds the
    /// image's write lock, the file is not writable…), it is opened again as it was and the error is thrown.</para>
    /// </remarks>
    /// <exception cref="BlockException">EPERM: a parent writes to the node, so it cannot become read-only; or the open in
    /// the new mode failed (the node is back in its old mode).</exception>
    public async ValueTask ReopenAsync(BlockNode node, bool readOnly, CancellationToken cancellationToken = default)
    {
        if (!node.IsOpen)
            throw new InvalidOperationException($"Node '{node.NodeName}' is not open");
        if (node.ReadOnly == readOnly)
            return;
        if (!readOnly && node.ForceShare)
            throw new BlockOptionsException("force-share=on can only be used with read-only images");
        if (readOnly && (node.Permissions & WritePermissions) != 0)
            throw new BlockException(Errno.EPERM, $"Node '{node.NodeName}' is in use for writing and cannot be made read-only");

        await using var drained = await BeginDrainAsync().ConfigureAwait(false);
        await ReopenTreeAsync(node, readOnly, cancellationToken).ConfigureAwait(false);
    }

    private async ValueTask ReopenTreeAsync(BlockNode node, bool readOnly, CancellationToken cancellationToken)
    {
        var owned = OwnedReferencedChildren(node);
        if (!readOnly)
        {
            foreach (var child in owned)
            {
                if (child.ReadOnly)
                    await ReopenTreeAsync(child, readOnly: false, cancellationToken).ConfigureAwait(false);
            }
        }
        await ReopenNodeAsync(node, node.Options with { ReadOnly = readOnly }, cancellationToken).ConfigureAwait(false);
        if (readOnly)
        {
            foreach (var child in owned)
            {
                if (!child.ReadOnly && (child.Permissions & WritePermissions) == 0)
                    await ReopenTreeAsync(child, readOnly: true, cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>The nodes <paramref name="node"/>'s options name by node name that only <paramref name="node"/> holds.</summary>
    private List<BlockNode> OwnedReferencedChildren(BlockNode node)
    {
        var owned = new List<BlockNode>();
        foreach (var (_, reference) in node.Options.ChildReferences)
        {
            if (reference?.Reference is not { } name || FindNode(name) is not { } child)
                continue;
            var parents = child.Parents;
            if (!child.IsMonitorOwned && parents.Count == 1 && ReferenceEquals(parents[0].Parent, node))
                owned.Add(child);
        }
        return owned;
    }

    /// <summary>Closes the driver of <paramref name="node"/> and opens it again with <paramref name="options"/>.</summary>
    /// <remarks>
    /// The node keeps its backing node, as a QEMU reopen does: the driver gets the node it had instead of opening the
    /// file its image names again, and a backing node attached at run time (an external snapshot's) is attached again
    /// after the driver opened. So a chain built live survives, and a backing file name just rewritten in the header
    /// (<c>change-backing-file</c>) is not followed until the image is opened anew.
    /// </remarks>
    private async ValueTask ReopenNodeAsync(BlockNode node, BlockdevOptions options, CancellationToken cancellationToken)
    {
        var oldOptions = node.Options;
        if (!node.ReadOnly)
            await node.FlushAsync().ConfigureAwait(false);

        // The children the options name must survive the driver letting go of them: the new driver attaches them again.
        var pinned = new List<BlockNode>();
        foreach (var (_, reference) in oldOptions.ChildReferences)
        {
            if (reference?.Reference is { } name && FindNode(name) is { } child)
            {
                child.PinCount++;
                pinned.Add(child);
            }
        }
        var kept = new Dictionary<string, (BlockNode Node, ChildRole Role)>(StringComparer.Ordinal);
        foreach (var edge in node.Children)
        {
            if ((edge.Role & ChildRole.Cow) == 0)
                continue;
            kept[edge.Name] = (edge.Node, edge.Role);
            edge.Node.PinCount++;
            pinned.Add(edge.Node);
        }
        try
        {
            bool wasReadOnly = node.ReadOnly;
            await CloseDriverAsync(node).ConfigureAwait(false);
            DetachStoredBitmaps(node, wasReadOnly);
            try
            {
                await OpenDriverAsync(node, options, kept, cancellationToken).ConfigureAwait(false);
            }
            catch (BlockException)
            {
                // Back to the mode the node had; if even that fails the node stays closed and its users see the error.
                try
                {
                    await OpenDriverAsync(node, oldOptions, kept, CancellationToken.None).ConfigureAwait(false);
                }
                catch (BlockException)
                {
                }
                throw;
            }
        }
        finally
        {
            foreach (var child in pinned)
            {
                child.PinCount--;
                await ReleaseNodeAsync(child).ConfigureAwait(false);
            }
        }
    }

    private async ValueTask CloseDriverAsync(BlockNode node)
    {
        await node.WaitIdleAsync().ConfigureAwait(false);
        var impl = node.DetachDriver();
        try
        {
            if (impl != null)
                await impl.DisposeAsync().ConfigureAwait(false);
        }
        finally
        {
            await DetachChildrenAsync(node).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Opens the driver of <paramref name="node"/> with <paramref name="options"/>, its kept children attached again;
    /// on failure the node is left closed with no children and without the bitmaps the failed open loaded.
    /// </summary>
    private async ValueTask OpenDriverAsync(BlockNode node, BlockdevOptions options,
        IReadOnlyDictionary<string, (BlockNode Node, ChildRole Role)> kept, CancellationToken cancellationToken)
    {
        node.ApplyOptions(options);
        var before = node.DirtyBitmaps;
        var context = new NodeOpenContext(this, node) { KeptChildren = kept };
        try
        {
            var impl = await node.Driver.OpenAsync(context, cancellationToken).ConfigureAwait(false);
            node.AttachDriver(impl);
            foreach (var (name, (child, role)) in kept)
            {
                // A backing node the driver did not ask for (the image was opened without its backing file, and the
                // node got one at run time): drivers read the backing edge at each request, so it is attached again.
                if (node.GetChild(name) is null)
                    AttachChild(node, name, child, role);
            }
            RefreshPermissions(node);
        }
        catch
        {
            if (node.IsOpen)
            {
                await CloseDriverAsync(node).ConfigureAwait(false);
                DetachStoredBitmaps(node, closedReadOnly: node.ReadOnly);
            }
            else
            {
                await DetachChildrenAsync(node).ConfigureAwait(false);
            }
            foreach (var bitmap in node.DirtyBitmaps)
            {
                if (!before.Contains(bitmap))
                    node.DetachDirtyBitmap(bitmap);
            }
            throw;
        }
    }

    /// <summary>
    /// After a node's driver closed for a reopen: detaches the persistent bitmaps the image now holds, which the driver
    /// attaches again as it opens (read-only or not, as the new mode says). A writable driver stored them all; a
    /// read-only one holds those it loaded (read-only), and the persistent bitmaps created since stay in memory until a
    /// writable driver stores them. Bitmaps that are not persistent stay as they are.
    /// </summary>
    private static void DetachStoredBitmaps(BlockNode node, bool closedReadOnly)
    {
        foreach (var bitmap in node.DirtyBitmaps)
        {
            if (bitmap.Persistent && (!closedReadOnly || bitmap.ReadOnly))
                node.DetachDirtyBitmap(bitmap);
        }
    }
}
