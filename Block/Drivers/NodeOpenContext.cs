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
    /// Opens (or finds, for a node-name reference) the child <paramref name="childName"/> and attaches it with
    /// <paramref name="role"/>. New children inherit read-only, cache, discard and force-share options that they
    /// do not set themselves; backing children are always read-only.
    /// </summary>
    public async ValueTask<BlockChild> OpenChildAsync(string childName, BlockdevRef reference, ChildRole role, CancellationToken cancellationToken = default)
    {
        BlockNode child;
        bool opened = false;
        if (reference.Reference is { } name)
        {
            child = Graph.FindNode(name)
                ?? throw new BlockNotFoundException($"Cannot find device='' nor node-name='{name}'");
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
