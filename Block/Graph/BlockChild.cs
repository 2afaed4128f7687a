namespace Block.Graph;

/// <summary>
/// An edge from a parent (node or backend) to a child node, with the role it plays, its QAPI name, and the
/// permissions the parent holds on the child and shares with the child's other users.
/// </summary>
public sealed class BlockChild
{
    internal BlockChild(IBlockParent parent, string name, BlockNode node, ChildRole role)
    {
        Parent = parent;
        Name = name;
        Node = node;
        Role = role;
    }

    /// <summary>The parent.</summary>
    public IBlockParent Parent { get; }

    /// <summary>The QAPI child name: <c>file</c>, <c>backing</c>, <c>data-file</c>, <c>children.0</c>, <c>root</c>.</summary>
    public string Name { get; }

    /// <summary>The child node.</summary>
    public BlockNode Node { get; internal set; }

    /// <summary>What the child holds for the parent.</summary>
    public ChildRole Role { get; }

    /// <summary>What the parent does with the child.</summary>
    public BlockPermissions Permissions { get; internal set; }

    /// <summary>What the parent lets other users of the child do.</summary>
    public BlockPermissions SharedPermissions { get; internal set; } = BlockPermissions.All;

    /// <inheritdoc />
    public override string ToString() => $"{Parent.ParentDescription} -[{Name}]-> '{Node.NodeName}'";
}
