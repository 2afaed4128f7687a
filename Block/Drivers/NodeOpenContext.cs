using Block.Graph;
using Block.Options;

namespace Block.Drivers;

/// <summary>What a driver's <see cref="BlockDriver.OpenAsync"/> gets: the node being opened, its options, and a way to open children.</summary>
public sealed class NodeOpenContext
{
    private readonly List<BlockNode> _openedChildren = [];

    internal NodeOpenContext(BlockGraph graph, BlockNode node)
    {
        Graph = graph;
        Node = node;
    }

    /// <summary>The graph.</summary>
    public BlockGraph Graph { get; }

    /// <summary>The node being opened.</summary>
    public BlockNode Node { get; }

    /// <summary>The node's options (the driver's own record type).</summary>
    public BlockdevOptions Options => Node.Options;

    internal IReadOnlyList<BlockNode> OpenedChildren => _openedChildren;

    /// <summary>
    /// While a node is reopened: the children it keeps, by child name. A driver asking for one of them gets the node
    /// it had, not a new open of what its options or its image name.
    /// </summary>
    internal IReadOnlyDictionary<string, (BlockNode Node, ChildRole Role)>? KeptChildren { get; init; }

    private BlockChild? AttachKept(string childName)
    {
        if (KeptChildren is null || !KeptChildren.TryGetValue(childName, out var kept))
            return null;
        return Graph.AttachChild(Node, childName, kept.Node, kept.Role);
    }

    /// <summary>
    /// Opens (or finds, for a reference: a node name, or a backend name for its root) the child <paramref name="childName"/> and attaches it with
    /// <paramref name="role"/>. New children inherit read-only, cache, discard and force-share options that they
    /// do not set themselves; backing children are always read-only.
    /// </summary>
    public async ValueTask<BlockChild> OpenChildAsync(string childName, BlockdevRef reference, ChildRole role, CancellationToken cancellationToken = default)
    {
        if (AttachKept(childName) is { } keptEdge)
            return keptEdge;
        BlockNode child;
        bool opened = false;
        if (reference.Reference is { } name)
        {
            child = Graph.LookupNode(name, name);
        }
        else
        {
            child = await Graph.OpenNodeAsync(Inherit(reference.Options!, role), cancellationToken).ConfigureAwait(false);
            opened = true;
        }
        try
        {
            var edge = Graph.AttachChild(Node, childName, child, role);
            if (opened)
                _openedChildren.Add(child);
            return edge;
        }
        catch
        {
            if (opened)
                await Graph.ReleaseNodeAsync(child).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Opens the image file <paramref name="filename"/> as a command-line image is opened (protocol by prefix, format
    /// probed) and attaches it as <paramref name="childName"/>: a child named in this node's own file name syntax, such
    /// as the test image of <c>blkverify:RAW:TEST</c>. It inherits read-only, cache and discard options as other
    /// children do.
    /// </summary>
    public async ValueTask<BlockChild> OpenChildImageAsync(string childName, string filename, ChildRole role, CancellationToken cancellationToken = default)
    {
        if (AttachKept(childName) is { } keptEdge)
            return keptEdge;
        var child = await Graph.OpenImageNodeAsync(filename, InheritedImageOptions(readOnly: false) with { AllowProbing = true },
            cancellationToken).ConfigureAwait(false);
        return await AttachOpenedAsync(childName, child, role).ConfigureAwait(false);
    }

    private const int MaxChainLength = 1000;
    private static readonly AsyncLocal<System.Collections.Immutable.ImmutableList<string>?> s_chain = new();

    /// <summary>
    /// Opens a file named inside this node's image — a backing file, an external data file, an extent — and attaches
    /// it as <paramref name="childName"/>. The name is resolved against the image's directory, checked by the graph's
    /// <see cref="ImageReferencePolicy"/>, opened with <paramref name="format"/> (probed only if the policy allows), and
    /// refused if it is already part of the chain being opened (a loop).
    /// </summary>
    /// <param name="childName">The QAPI child name (<c>backing</c>, <c>data-file</c>…).</param>
    /// <param name="name">The file name as the image records it.</param>
    /// <param name="format">The format the image records, or null.</param>
    /// <param name="role">The child's role.</param>
    /// <param name="readOnly">Open read-only (backing files always are).</param>
    /// <param name="cancellationToken">Cancels the open.</param>
    public async ValueTask<BlockChild> OpenReferencedImageAsync(string childName, string name, string? format, ChildRole role, bool readOnly,
        CancellationToken cancellationToken = default)
    {
        if (AttachKept(childName) is { } keptEdge)
            return keptEdge;
        string resolved = Node.ResolveReference(name);
        Graph.ReferencePolicy.Check(resolved, Node.ReferenceBaseFilename);
        if (format is null && !Graph.ReferencePolicy.AllowProbing)
            throw new BlockException(Errno.EACCES, $"The format of '{resolved}' is not recorded in '{Node.ReferenceBaseFilename}' and the image reference policy does not allow probing it");

        var chain = s_chain.Value ?? [];
        string self = Canonical(Node.ReferenceBaseFilename);
        if (!chain.Contains(self))
            chain = chain.Add(self);
        string target = Canonical(resolved);
        if (chain.Contains(target))
            throw new BlockException(Errno.ELOOP, $"Backing chain loop: '{resolved}' is already part of the chain of '{Node.ReferenceBaseFilename}'");
        if (chain.Count >= MaxChainLength)
            throw new BlockException(Errno.EMLINK, $"Backing chain of '{Node.ReferenceBaseFilename}' is longer than {MaxChainLength} images");

        var previous = s_chain.Value;
        s_chain.Value = chain;
        BlockNode child;
        try
        {
            child = await Graph.OpenImageNodeAsync(resolved, InheritedImageOptions(readOnly) with
            {
                Format = format,
                AllowProbing = Graph.ReferencePolicy.AllowProbing,
            }, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            s_chain.Value = previous;
        }
        return await AttachOpenedAsync(childName, child, role).ConfigureAwait(false);
    }

    /// <summary>Options for an image this node opens by name: read-only, force-share, cache and discard as the node's.</summary>
    private ImageOpenOptions InheritedImageOptions(bool readOnly) => new()
    {
        ReadOnly = readOnly || Node.ReadOnly,
        ForceShare = Node.ForceShare,
        CacheDirect = Node.CacheDirect,
        NoFlush = Node.CacheNoFlush,
        Discard = Node.Discard,
    };

    /// <summary>Attaches a child this context opened, releasing it if the attach fails.</summary>
    private async ValueTask<BlockChild> AttachOpenedAsync(string childName, BlockNode child, ChildRole role)
    {
        try
        {
            var edge = Graph.AttachChild(Node, childName, child, role);
            _openedChildren.Add(child);
            return edge;
        }
        catch
        {
            await Graph.ReleaseNodeAsync(child).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>The absolute path of <paramref name="path"/> with symbolic links resolved; protocol and <c>json:</c> names as they are.</summary>
    internal static string Canonical(string path)
    {
        if (path.StartsWith("json:", StringComparison.Ordinal) || path.Contains("://", StringComparison.Ordinal))
            return path;
        try
        {
            var info = new FileInfo(Path.GetFullPath(path));
            return info.LinkTarget != null ? info.ResolveLinkTarget(returnFinalTarget: true)?.FullName ?? info.FullName : info.FullName;
        }
        catch (IOException)
        {
            return Path.GetFullPath(path);
        }
    }

    private BlockdevOptions Inherit(BlockdevOptions child, ChildRole role)
    {
        var parent = Node;
        bool cow = (role & ChildRole.Cow) != 0;
        return child with
        {
            ReadOnly = cow ? true : child.ReadOnly ?? parent.ReadOnly,
            Cache = child.Cache ?? parent.Options.Cache,
            Discard = child.Discard ?? parent.Options.Discard,
            ForceShare = child.ForceShare ?? (parent.ForceShare ? true : null),
        };
    }
}
