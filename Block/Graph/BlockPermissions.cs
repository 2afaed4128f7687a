namespace Block.Graph;

/// <summary>
/// What a parent does with a child node (and what it lets others do), QEMU's <c>BLK_PERM_*</c>. The bit numbers are
/// the lock byte offsets QEMU uses between processes: byte <c>100 + bit</c> = "I use it", <c>200 + bit</c> = "I do not
/// share it".
/// </summary>
[Flags]
public enum BlockPermissions
{
    /// <summary>Nothing.</summary>
    None = 0,
    /// <summary>Reads return the current, consistent content.</summary>
    ConsistentRead = 1 << 0,
    /// <summary>Writes that change the content.</summary>
    Write = 1 << 1,
    /// <summary>Writes that leave the content as it is (copy-on-read, some jobs).</summary>
    WriteUnchanged = 1 << 2,
    /// <summary>Changing the node's length.</summary>
    Resize = 1 << 3,
    /// <summary>Every permission.</summary>
    All = ConsistentRead | Write | WriteUnchanged | Resize,
}

/// <summary>Names of permissions as QEMU's messages spell them.</summary>
public static class BlockPermissionNames
{
    /// <summary>The permission bits in lock-byte order.</summary>
    public static readonly BlockPermissions[] Bits =
        [BlockPermissions.ConsistentRead, BlockPermissions.Write, BlockPermissions.WriteUnchanged, BlockPermissions.Resize];

    /// <summary>"consistent read", "write", "write unchanged" or "resize".</summary>
    public static string Name(BlockPermissions bit) => bit switch
    {
        BlockPermissions.ConsistentRead => "consistent read",
        BlockPermissions.Write => "write",
        BlockPermissions.WriteUnchanged => "write unchanged",
        BlockPermissions.Resize => "resize",
        _ => bit.ToString(),
    };

    /// <summary>Comma-separated names of the bits set in <paramref name="permissions"/>.</summary>
    public static string Describe(BlockPermissions permissions) =>
        string.Join(", ", Bits.Where(b => (permissions & b) != 0).Select(Name));
}
