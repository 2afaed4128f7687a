using Block.Drivers.Blkdebug;
using System.Buffers.Binary;
using Block.Graph;
using Block.Qcow2.Driver;
using Block.Qcow2.Format;

namespace Block.Qcow2.Metadata;

/// <summary>
/// The refcount table and blocks: reading and changing the reference count of host clusters, and allocating free
/// clusters (first fit, growing the file at its end). All methods run under the driver's metadata lock.
/// </summary>
/// <remarks>
/// <para>A refcount block that does not exist yet is created at the first cluster of the range it covers, so it
/// describes itself; the refcount table grows into free clusters at the end of the file, with any new blocks it needs,
/// and the header is switched to it in one write after both are on disk. A crash at any point leaves at worst
/// unreferenced clusters past the old end.</para>
/// <para>Clusters freed since the last flush are not handed out again until the next flush, so a crash cannot leave a
/// cluster referenced by both an old (on-disk) and a new (in-memory) L2 entry.</para>
/// </remarks>
internal sealed class RefcountManager
{
    private const long MaxTableBytes = 8L << 20;
    private readonly Qcow2Layout _layout;
    private readonly BlockNode _file;
    private readonly Func<long, long, Qcow2OverlapFlags, ValueTask> _overlapCheck;
    private readonly Func<ulong, uint, ValueTask> _writeHeaderTable;
    private readonly HashSet<long> _freedSinceFlush = [];
    private readonly List<(long Offset, long Bytes)> _pendingDiscards = [];
    private ulong[] _table;
    private long _freeClusterIndex;
    private long _freeByteOffset;
    private bool _growing;

    public RefcountManager(Qcow2Layout layout, BlockNode file, MetadataCache blocks, ulong[] table, long tableOffset, int tableClusters,
        Func<long, long, Qcow2OverlapFlags, ValueTask> overlapCheck, Func<ulong, uint, ValueTask> writeHeaderTable)
    {
        _layout = layout;
        _file = file;
        Blocks = blocks;
        _table = table;
        TableOffset = tableOffset;
        TableClusters = tableClusters;
        _overlapCheck = overlapCheck;
        _writeHeaderTable = writeHeaderTable;
    }

    /// <summary>The refcount block cache.</summary>
    public MetadataCache Blocks { get; }

    /// <summary>Host offset of the refcount table.</summary>
    public long TableOffset { get; private set; }

    /// <summary>Clusters the refcount table occupies.</summary>
    public int TableClusters { get; private set; }

    /// <summary>The table's entries (refcount block offsets; 0 = none).</summary>
    public IReadOnlyList<ulong> Table => _table;

    /// <summary>Called when the refcount table or the set of refcount blocks changed (for the overlap map).</summary>
    public Action? MetadataChanged { get; set; }

    /// <summary>Whether clusters whose refcount reaches zero are discarded in the file (pass-discard-*).</summary>
    public Func<DiscardReason, bool> PassDiscard { get; set; } = _ => false;

    /// <summary>The refcount of cluster <paramref name="clusterIndex"/> (0 beyond the table or in a missing block).</summary>
    public async ValueTask<ulong> GetAsync(long clusterIndex)
    {
        long b = clusterIndex / _layout.RefcountBlockEntries;
        if (b >= _table.Length)
            return 0;
        ulong blockOffset = _table[b] & Qcow2Layout.OffsetMask;
        if (blockOffset == 0)
            return 0;
        if ((blockOffset & (ulong)(_layout.ClusterSize - 1)) != 0)
            throw UnalignedBlock(blockOffset, b);
        var entry = await Blocks.GetAsync((long)blockOffset).ConfigureAwait(false);
        return RefcountBlock.Get(entry.Data, clusterIndex % _layout.RefcountBlockEntries, _layout.RefcountBits);
    }

    /// <summary>Adds <paramref name="delta"/> to the refcount of each cluster in <c>[start, start + count)</c>.</summary>
    /// <remarks>As QEMU's <c>update_refcount</c>: a failure part way (a refcount block that could not be created)
    /// undoes the counts already changed, so a failed allocation leaks nothing; if the undo fails too, they leak.</remarks>
    /// <exception cref="BlockException">A refcount would overflow or drop below zero: the image is corrupt.</exception>
    public ValueTask UpdateAsync(long start, long count, long delta, DiscardReason reason = DiscardReason.Never) =>
        UpdateAsync(start, count, delta, reason, undoOnFailure: true);

    private async ValueTask UpdateAsync(long start, long count, long delta, DiscardReason reason, bool undoOnFailure)
    {
        long lastBlock = -1;
        long c = start;
        try
        {
            for (; c < start + count; c++)
            {
                // As QEMU's update: each refcount block it moves to is looked up as one that may need allocating.
                if (c / _layout.RefcountBlockEntries != lastBlock)
                {
                    lastBlock = c / _layout.RefcountBlockEntries;
                    await _file.DebugEventAsync(BlkdebugEvent.RefblockAlloc).ConfigureAwait(false);
                }
                var entry = await BlockForAsync(c, create: delta > 0).ConfigureAwait(false);
                if (entry is null)
                    throw Corruption($"Cannot change the refcount of cluster {c}: no refcount block covers it", c);
                long i = c % _layout.RefcountBlockEntries;
                ulong old = RefcountBlock.Get(entry.Data, i, _layout.RefcountBits);
                long value = (long)old + delta;
                if (value < 0)
                    throw Corruption($"Refcount of cluster {c} would drop below zero", c);
                if (value > _layout.MaxRefcount)
                    throw new BlockException(Errno.ERANGE, $"Refcount of cluster {c} would exceed {_layout.MaxRefcount} ({_layout.RefcountBits}-bit refcounts)");
                RefcountBlock.Set(entry.Data, i, _layout.RefcountBits, (ulong)value);
                MetadataCache.MarkDirty(entry);
                if (value == 0)
                {
                    _freedSinceFlush.Add(c);
                    if (_freeByteOffset != 0 && c == _freeByteOffset >> _layout.ClusterBits)
                        _freeByteOffset = 0;
                    if (PassDiscard(reason))
                        AddDiscard(c);
                }
            }
        }
        catch (BlockException) when (undoOnFailure && c > start)
        {
            // Clusters [start, c) were changed; cluster c was not.
            try
            {
                await UpdateAsync(start, c - start, -delta, DiscardReason.Never, undoOnFailure: false).ConfigureAwait(false);
            }
            catch (BlockException)
            {
            }
            throw;
        }
    }

    /// <summary>Allocates <paramref name="count"/> contiguous free clusters (refcount 1 each) and returns the host offset of the first.</summary>
    /// <remarks>First fit from a cursor that only moves back when freed clusters become reusable (after a flush), as
    /// QEMU's allocator does; missing refcount blocks are created on the way, at the first free cluster.</remarks>
    public async ValueTask<long> AllocateAsync(long count)
    {
        if (count <= 0)
            throw new ArgumentOutOfRangeException(nameof(count));
        await _file.DebugEventAsync(BlkdebugEvent.ClusterAlloc).ConfigureAwait(false);
        long start = await FindFreeAsync(count).ConfigureAwait(false);
        if (start == 0)
            throw Corruption("Refusing to allocate the header cluster", 0);
        await UpdateAsync(start, count, +1).ConfigureAwait(false);
        return start << _layout.ClusterBits;
    }

    /// <summary>Drops the references taken by an allocation that was not used (its write failed).</summary>
    public async ValueTask ReleaseAsync(long offset, long count)
    {
        await _file.DebugEventAsync(BlkdebugEvent.ClusterFree).ConfigureAwait(false);
        await UpdateAsync(offset >> _layout.ClusterBits, count, -1).ConfigureAwait(false);
    }

    /// <summary>
    /// Frees clusters that were allocated but never referenced from anything on disk: they may be handed out again at
    /// once, without waiting for a flush (QEMU reuses freed clusters immediately; here it is safe because nothing on disk
    /// can still point at them).
    /// </summary>
    public async ValueTask ReleaseUnreferencedAsync(long offset, long count)
    {
        long first = offset >> _layout.ClusterBits;
        await UpdateAsync(first, count, -1).ConfigureAwait(false);
        for (long c = first; c < first + count; c++)
            _freedSinceFlush.Remove(c);
        _freeClusterIndex = Math.Min(_freeClusterIndex, first);
    }

    /// <summary>The cache's capacity in blocks.</summary>
    public int CacheEntries => Blocks.Capacity;

    /// <summary>
    /// Allocates <paramref name="bytes"/> (at most a cluster) for compressed data, packing compressed clusters back to
    /// back as QEMU does: each user of a host cluster holds one reference to it, and data that does not fit in what is
    /// left of the last host cluster runs on into the next one when that is the cluster allocated next.
    /// </summary>
    /// <remarks>
    /// Running on instead of starting a new host cluster is what keeps <c>convert -c</c>'s output as small as
    /// qemu-img's: compressed 64 KiB clusters of text take about 22 KiB, so starting afresh whenever the next one
    /// does not fit would waste a third of every host cluster. The caller releases a failed allocation with
    /// <see cref="ReleaseBytesAsync"/>.
    /// </remarks>
    public async ValueTask<long> AllocateBytesAsync(int bytes)
    {
        int cs = _layout.ClusterSize;
        long offset = _freeByteOffset;
        long used = offset & (cs - 1);
        ulong current = offset != 0 && used != 0 ? await GetAsync(offset >> _layout.ClusterBits).ConfigureAwait(false) : 0;
        // A host cluster whose count is at the width's maximum (1-bit refcounts: any user) takes no more users.
        if (current == 0 || current >= (ulong)_layout.MaxRefcount)
        {
            offset = await AllocateAsync((bytes + cs - 1) / cs).ConfigureAwait(false);
        }
        else if (used + bytes <= cs)
        {
            // The data fits in the host cluster the last compressed write used: one more reference to it.
            await UpdateAsync(offset >> _layout.ClusterBits, 1, +1).ConfigureAwait(false);
        }
        else
        {
            long next = await AllocateAsync((used + bytes - 1) / cs).ConfigureAwait(false);
            if (next == offset - used + cs)
                await UpdateAsync(offset >> _layout.ClusterBits, 1, +1).ConfigureAwait(false);
            else
                offset = next;
        }
        long end = offset + bytes;
        _freeByteOffset = (end & (cs - 1)) == 0 ? 0 : end;
        return offset;
    }

    /// <summary>Drops the references an allocation of <paramref name="bytes"/> at <paramref name="offset"/> took (its write failed).</summary>
    public ValueTask ReleaseBytesAsync(long offset, int bytes)
    {
        long first = offset >> _layout.ClusterBits;
        return UpdateAsync(first, ((offset + bytes - 1) >> _layout.ClusterBits) - first + 1, -1);
    }

    /// <summary>Makes clusters freed since the last flush reusable, and discards them in the file where configured.</summary>
    public async ValueTask AfterFlushAsync()
    {
        foreach (long c in _freedSinceFlush)
        {
            if (c < _freeClusterIndex)
                _freeClusterIndex = c;
        }
        _freedSinceFlush.Clear();
        if (_pendingDiscards.Count == 0)
            return;
        var discards = _pendingDiscards.ToList();
        _pendingDiscards.Clear();
        foreach (var (offset, bytes) in discards)
        {
            try
            {
                await _file.DiscardAsync(offset, bytes).ConfigureAwait(false);
            }
            catch (BlockException)
            {
                // Discard is advisory; the clusters are free in the refcounts either way.
            }
        }
    }

    /// <summary>Counts clusters below <paramref name="clusters"/> with a nonzero refcount, stopping once <paramref name="stopAt"/> are found.</summary>
    public async ValueTask<long> CountUsedAsync(long clusters, long stopAt)
    {
        long used = 0;
        long entries = _layout.RefcountBlockEntries;
        for (long b = 0; b < _table.Length && b * entries < clusters; b++)
        {
            long offset = (long)(_table[b] & Qcow2Layout.OffsetMask);
            if (offset == 0)
                continue;
            var data = (await Blocks.GetAsync(offset).ConfigureAwait(false)).Data;
            long n = Math.Min(entries, clusters - b * entries);
            for (long i = 0; i < n; i++)
            {
                if (RefcountBlock.Get(data, i, _layout.RefcountBits) != 0 && ++used >= stopAt)
                    return used;
            }
        }
        return used;
    }

    /// <summary>The highest cluster index below <paramref name="clusters"/> with a nonzero refcount (0 if none).</summary>
    public async ValueTask<long> LastUsedClusterAsync(long clusters)
    {
        long entries = _layout.RefcountBlockEntries;
        for (long b = Math.Min(_table.Length - 1, (clusters - 1) / entries); b >= 0; b--)
        {
            long offset = (long)(_table[b] & Qcow2Layout.OffsetMask);
            if (offset == 0)
                continue;
            var data = (await Blocks.GetAsync(offset).ConfigureAwait(false)).Data;
            for (long i = Math.Min(entries, clusters - b * entries) - 1; i >= 0; i--)
            {
                if (RefcountBlock.Get(data, i, _layout.RefcountBits) != 0)
                    return b * entries + i;
            }
        }
        return 0;
    }

    /// <summary>Switches to a refcount structure written elsewhere (a rebuild); cached blocks are forgotten.</summary>
    public void Replace(ulong[] table, long tableOffset, int tableClusters)
    {
        Blocks.Clear(dirtyToo: true);
        _table = table;
        TableOffset = tableOffset;
        TableClusters = tableClusters;
        _freedSinceFlush.Clear();
        _freeClusterIndex = 0;
        _freeByteOffset = 0;
        MetadataChanged?.Invoke();
    }

    /// <summary>Lowers the first-fit cursor (used after repairs rebuild the counts).</summary>
    public void ResetFreeIndex() => _freeClusterIndex = 0;

    private void AddDiscard(long cluster)
    {
        long offset = cluster << _layout.ClusterBits;
        if (_pendingDiscards.Count > 0 && _pendingDiscards[^1] is var (o, b) && o + b == offset)
            _pendingDiscards[^1] = (o, b + _layout.ClusterSize);
        else
            _pendingDiscards.Add((offset, _layout.ClusterSize));
    }

    /// <summary>
    /// Finds <paramref name="count"/> contiguous free clusters from the cursor and moves the cursor past them.
    /// Clusters freed since the last flush are not free yet; clusters without a refcount block are.
    /// </summary>
    private async ValueTask<long> FindFreeAsync(long count)
    {
        long limit = BlockNode.MaxLength >> _layout.ClusterBits;
        long entries = _layout.RefcountBlockEntries;
        long runStart = Math.Max(_freeClusterIndex, 1);
        long c = runStart;
        while (c - runStart < count)
        {
            if (c > limit)
                throw new BlockException(Errno.ENOSPC, "qcow2: no free cluster range left in the image's address space");
            long b = c / entries;
            ulong blockOffset = b < _table.Length ? _table[b] & Qcow2Layout.OffsetMask : 0;
            if (blockOffset == 0 && _freedSinceFlush.Count == 0)
            {
                // No block: every cluster it would cover is free.
                c = (b + 1) * entries;
                continue;
            }
            byte[]? data = blockOffset == 0 ? null : (await Blocks.GetAsync((long)blockOffset).ConfigureAwait(false)).Data;
            long blockEnd = (b + 1) * entries;
            for (; c < blockEnd && c - runStart < count; c++)
            {
                bool free = (data is null || RefcountBlock.Get(data, c % entries, _layout.RefcountBits) == 0) && !_freedSinceFlush.Contains(c);
                if (!free)
                    runStart = c + 1;
            }
        }
        if (_freeClusterIndex <= runStart)
            _freeClusterIndex = runStart + count;
        return runStart;
    }

    private async ValueTask<CacheEntry?> BlockForAsync(long cluster, bool create)
    {
        long b = cluster / _layout.RefcountBlockEntries;
        if (b < _table.Length && (_table[b] & Qcow2Layout.OffsetMask) is var off && off != 0)
        {
            if ((off & (ulong)(_layout.ClusterSize - 1)) != 0)
                throw UnalignedBlock(off, b);
            await _file.DebugEventAsync(BlkdebugEvent.RefblockLoad).ConfigureAwait(false);
            return await Blocks.GetAsync((long)off).ConfigureAwait(false);
        }
        if (!create)
            return null;
        await CreateBlockAsync(b).ConfigureAwait(false);
        return await Blocks.GetAsync((long)(_table[b] & Qcow2Layout.OffsetMask)).ConfigureAwait(false);
    }

    /// <summary>
    /// Creates refcount block <paramref name="b"/> at the first free cluster. If that cluster lies in the block's own
    /// range the block counts itself; otherwise its count goes into the block covering it (created the same way).
    /// The block reaches the disk before the table entry that points at it.
    /// </summary>
    private async ValueTask CreateBlockAsync(long b)
    {
        if (b >= _table.Length)
            await GrowTableAsync(b + 1).ConfigureAwait(false);
        if ((_table[b] & Qcow2Layout.OffsetMask) != 0)
            return; // growing the table created it
        long cluster = await FindFreeAsync(1).ConfigureAwait(false);
        long offset = cluster << _layout.ClusterBits;
        bool self = cluster / _layout.RefcountBlockEntries == b;
        if (!self)
            await UpdateAsync(cluster, 1, +1).ConfigureAwait(false);
        await _overlapCheck(offset, _layout.ClusterSize, Qcow2OverlapFlags.None).ConfigureAwait(false);
        var entry = await Blocks.GetEmptyAsync(offset).ConfigureAwait(false);
        if (self)
            RefcountBlock.Set(entry.Data, cluster % _layout.RefcountBlockEntries, _layout.RefcountBits, 1);
        MetadataCache.MarkDirty(entry);
        await _file.DebugEventAsync(BlkdebugEvent.RefblockAllocWrite).ConfigureAwait(false);
        await Blocks.FlushAsync().ConfigureAwait(false);
        _table[b] = (ulong)offset;
        if (!_growing)
        {
            await _file.DebugEventAsync(BlkdebugEvent.RefblockAllocHookup).ConfigureAwait(false);
            await WriteTableEntryAsync(b).ConfigureAwait(false);
            MetadataChanged?.Invoke();
        }
    }

    private async ValueTask WriteTableEntryAsync(long b)
    {
        var bytes = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(bytes, _table[b]);
        long at = TableOffset + b * 8;
        await _overlapCheck(at, 8, Qcow2OverlapFlags.RefcountTable).ConfigureAwait(false);
        await _file.WriteAsync(at, bytes.AsMemory()).ConfigureAwait(false);
        await _file.FlushAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// Moves the refcount table to a larger one: the new table's clusters are allocated and counted (creating blocks as
    /// needed, recorded in memory only), the blocks are flushed, the table is written and synced, the header is switched
    /// in one write, and only then is the old table freed. A crash before the switch leaves unreferenced clusters.
    /// </summary>
    private async ValueTask GrowTableAsync(long minEntries)
    {
        if (_growing)
            throw new InvalidOperationException("Refcount table growth re-entered");
        int cs = _layout.ClusterSize;
        long entriesPerCluster = cs / 8;
        // Room for the blocks the table and its own blocks need, plus half again, as QEMU leaves slack.
        long entries = Math.Max(minEntries, _table.Length + _table.Length / 2 + 1);
        long clusters = (entries + entriesPerCluster - 1) / entriesPerCluster;
        if (clusters * cs > MaxTableBytes)
            throw new BlockException(Errno.EFBIG, "Refcount table too large: the image cannot grow further");

        await _file.DebugEventAsync(BlkdebugEvent.ReftableGrow).ConfigureAwait(false);
        var oldTable = _table;
        long oldOffset = TableOffset;
        int oldClusters = TableClusters;
        var table = new ulong[clusters * entriesPerCluster];
        Array.Copy(_table, table, _table.Length);
        _growing = true;
        long start;
        try
        {
            _table = table;
            start = await FindFreeAsync(clusters).ConfigureAwait(false);
            if ((start + clusters) / _layout.RefcountBlockEntries >= table.Length)
                throw new BlockException(Errno.EFBIG, "Refcount table too large: the image cannot grow further");
            await UpdateAsync(start, clusters, +1).ConfigureAwait(false);
            await _file.DebugEventAsync(BlkdebugEvent.RefblockAllocWriteBlocks).ConfigureAwait(false);
            await Blocks.FlushAsync().ConfigureAwait(false);

            long tableOffset = start << _layout.ClusterBits;
            await _overlapCheck(tableOffset, clusters * cs, Qcow2OverlapFlags.None).ConfigureAwait(false);
            var bytes = new byte[clusters * cs];
            for (long i = 0; i < table.Length; i++)
                BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan((int)(i * 8)), table[i]);
            await _file.DebugEventAsync(BlkdebugEvent.RefblockAllocWriteTable).ConfigureAwait(false);
            await _file.WriteAsync(tableOffset, bytes.AsMemory()).ConfigureAwait(false);
            await _file.FlushAsync().ConfigureAwait(false);
            TableOffset = tableOffset;
            TableClusters = (int)clusters;
            await _file.DebugEventAsync(BlkdebugEvent.RefblockAllocSwitchTable).ConfigureAwait(false);
            await _writeHeaderTable((ulong)tableOffset, (uint)clusters).ConfigureAwait(false);
            MetadataChanged?.Invoke();
        }
        catch
        {
            _table = oldTable;
            TableOffset = oldOffset;
            TableClusters = oldClusters;
            throw;
        }
        finally
        {
            _growing = false;
        }
        await UpdateAsync(oldOffset >> _layout.ClusterBits, oldClusters, -1, DiscardReason.Other).ConfigureAwait(false);
    }

    private static Qcow2CorruptionException UnalignedBlock(ulong offset, long tableIndex) =>
        new($"Refblock offset {QemuText.AlternateHex(offset)} unaligned (reftable index: {QemuText.AlternateHex((ulong)tableIndex)})");

    private BlockException Corruption(string message, long cluster) =>
        new Qcow2CorruptionException(message, cluster << _layout.ClusterBits, _layout.ClusterSize);
}

/// <summary>Why a cluster's refcount dropped to zero, for the pass-discard-* options.</summary>
internal enum DiscardReason
{
    Never,
    /// <summary>Always passed to the file (clusters cut off by shrinking, as QEMU's <c>QCOW2_DISCARD_ALWAYS</c>).</summary>
    Always,
    Request,
    Snapshot,
    Other,
}
