namespace Block.Graph;

/// <summary>
/// What a child edge carries (QEMU's <c>BdrvChildRole</c>); the default permissions a parent asks of the child follow
/// from it.
/// </summary>
[Flags]
public enum ChildRole
{
    /// <summary>No particular role.</summary>
    None = 0,
    /// <summary>The child holds guest data.</summary>
    Data = 1 << 0,
    /// <summary>The child holds the parent's metadata.</summary>
    Metadata = 1 << 1,
    /// <summary>The parent is a filter: the child's content is the parent's content.</summary>
    Filtered = 1 << 2,
    /// <summary>The child is a backing (copy-on-write source) node.</summary>
    Cow = 1 << 3,
    /// <summary>The child is the parent's primary child (<c>file</c> of a format node).</summary>
    Primary = 1 << 4,
    /// <summary>The child is a whole image.</summary>
    Image = 1 << 5,
    /// <summary>A format node's <c>file</c>: its metadata and data.</summary>
    Storage = Data | Metadata | Primary,
}
