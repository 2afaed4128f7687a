namespace Block.Drivers.Blkdebug;

/// <summary>
/// QAPI <c>BlkdebugEvent</c>: the points inside format drivers and the request path where a driver reports what it is
/// about to do to its file child, so that a <c>blkdebug</c> node below can fail the next request or change state.
/// </summary>
/// <remarks>
/// The members are in the schema's order; <see cref="BlkdebugEventNames"/> maps them to the wire names
/// (<c>l2_alloc_write</c>). Firing one costs a static load when no blkdebug node is open.
/// </remarks>
public enum BlkdebugEvent
{
    /// <summary>An L1 entry is written.</summary>
    L1Update,
    /// <summary>A bigger L1 table is allocated.</summary>
    L1GrowAllocTable,
    /// <summary>The bigger L1 table is written.</summary>
    L1GrowWriteTable,
    /// <summary>The header is pointed at the bigger L1 table.</summary>
    L1GrowActivateTable,
    /// <summary>An L2 table (slice) is read from the file.</summary>
    L2Load,
    /// <summary>L2 entries are written.</summary>
    L2Update,
    /// <summary>An L2 entry for a compressed cluster is written.</summary>
    L2UpdateCompressed,
    /// <summary>A new L2 table's old content is read (copied from a snapshot's table).</summary>
    L2AllocCowRead,
    /// <summary>A new L2 table is written.</summary>
    L2AllocWrite,
    /// <summary>Guest data is read from the file.</summary>
    ReadAio,
    /// <summary>Guest data is read from the backing file.</summary>
    ReadBackingAio,
    /// <summary>A compressed cluster is read.</summary>
    ReadCompressed,
    /// <summary>Guest data is written to the file.</summary>
    WriteAio,
    /// <summary>A compressed cluster is written.</summary>
    WriteCompressed,
    /// <summary>VM state is read.</summary>
    VmstateLoad,
    /// <summary>VM state is written.</summary>
    VmstateSave,
    /// <summary>Copy-on-write: the untouched part of a cluster is read.</summary>
    CowRead,
    /// <summary>Copy-on-write: the untouched part of a cluster is written.</summary>
    CowWrite,
    /// <summary>The refcount table is read.</summary>
    ReftableLoad,
    /// <summary>The refcount table grows.</summary>
    ReftableGrow,
    /// <summary>A refcount table entry is written.</summary>
    ReftableUpdate,
    /// <summary>A refcount block is read.</summary>
    RefblockLoad,
    /// <summary>A refcount block is written whole.</summary>
    RefblockUpdate,
    /// <summary>Part of a refcount block is written.</summary>
    RefblockUpdatePart,
    /// <summary>A refcount block is allocated.</summary>
    RefblockAlloc,
    /// <summary>A new refcount block is hooked into the refcount table.</summary>
    RefblockAllocHookup,
    /// <summary>A new refcount block is written.</summary>
    RefblockAllocWrite,
    /// <summary>Refcount blocks for a grown refcount table are written.</summary>
    RefblockAllocWriteBlocks,
    /// <summary>A grown refcount table is written.</summary>
    RefblockAllocWriteTable,
    /// <summary>The header is pointed at a grown refcount table.</summary>
    RefblockAllocSwitchTable,
    /// <summary>Clusters are allocated.</summary>
    ClusterAlloc,
    /// <summary>Bytes (for compressed data) are allocated.</summary>
    ClusterAllocBytes,
    /// <summary>Clusters are freed.</summary>
    ClusterFree,
    /// <summary>A flush writes cached data to the operating system.</summary>
    FlushToOs,
    /// <summary>A flush makes data durable.</summary>
    FlushToDisk,
    /// <summary>The head of an unaligned write is read.</summary>
    PwritevRmwHead,
    /// <summary>The head of an unaligned write was read.</summary>
    PwritevRmwAfterHead,
    /// <summary>The tail of an unaligned write is read.</summary>
    PwritevRmwTail,
    /// <summary>The tail of an unaligned write was read.</summary>
    PwritevRmwAfterTail,
    /// <summary>A node is about to be written.</summary>
    Pwritev,
    /// <summary>A node is about to have zeroes written.</summary>
    PwritevZero,
    /// <summary>A node's write is done.</summary>
    PwritevDone,
    /// <summary>An image is being made empty.</summary>
    EmptyImagePrepare,
}
