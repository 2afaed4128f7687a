namespace Block.Vmdk.Descriptor;

/// <summary>The kind of one extent, as the descriptor's extent line names it.</summary>
public enum VmdkExtentType
{
    /// <summary><c>FLAT</c>: the extent file's bytes are the disk's bytes, from a sector offset on.</summary>
    Flat,

    /// <summary><c>SPARSE</c>: a hosted sparse extent ("KDMV" header, grain directory and tables).</summary>
    Sparse,

    /// <summary><c>VMFS</c>: an ESX flat extent (no offset).</summary>
    Vmfs,

    /// <summary><c>VMFSSPARSE</c>: an ESX sparse extent ("COWD" header), read-only here.</summary>
    VmfsSparse,

    /// <summary><c>SESPARSE</c>: an ESXi space-efficient sparse extent, read-only here.</summary>
    SeSparse,
}
