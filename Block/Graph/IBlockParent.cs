namespace Block.Graph;

/// <summary>Something that holds child edges to nodes: another node, or a backend (device).</summary>
public interface IBlockParent
{
    /// <summary>How QEMU's messages name the parent ("node 'x'", "device 'y'", "a block device").</summary>
    string ParentDescription { get; }
}
