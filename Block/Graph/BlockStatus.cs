namespace Block.Graph;

/// <summary>Allocation status bits (QEMU's <c>BDRV_BLOCK_*</c>).</summary>
[Flags]
public enum BlockStatusFlags
{
    /// <summary>Unallocated in this layer: read from the backing node, or zeroes without one.</summary>
    None = 0,
    /// <summary>The data is read from <see cref="BlockStatus.File"/> (it may still read as zero).</summary>
    Data = 1 << 0,
    /// <summary>The range reads as zeroes.</summary>
    Zero = 1 << 1,
    /// <summary><see cref="BlockStatus.HostOffset"/> and <see cref="BlockStatus.File"/> are valid.</summary>
    OffsetValid = 1 << 2,
    /// <summary>Pass-through: ask <see cref="BlockStatus.File"/> at the host offset (used by raw and filters).</summary>
    Raw = 1 << 3,
    /// <summary>The content is determined by this layer (not by a backing node).</summary>
    Allocated = 1 << 4,
    /// <summary>The range reaches the end of the node.</summary>
    Eof = 1 << 5,
    /// <summary>Also ask <see cref="BlockStatus.File"/> whether the data reads as zeroes.</summary>
    Recurse = 1 << 6,
}

/// <summary>
/// The status of the range <c>[offset, offset + Bytes)</c> of a node: all of it has the same flags, and for
/// <see cref="BlockStatusFlags.OffsetValid"/> it maps contiguously to <see cref="HostOffset"/> in <see cref="File"/>.
/// </summary>
/// <param name="Flags">What the range is.</param>
/// <param name="Bytes">Length of the run, at least 1 unless at end of node.</param>
/// <param name="HostOffset">Offset of the run's first byte in <paramref name="File"/>.</param>
/// <param name="File">The node that holds the data.</param>
public readonly record struct BlockStatus(BlockStatusFlags Flags, long Bytes, long HostOffset = 0, BlockNode? File = null)
{
    /// <summary>True if <paramref name="flag"/> is set.</summary>
    public bool Has(BlockStatusFlags flag) => (Flags & flag) != 0;
}
