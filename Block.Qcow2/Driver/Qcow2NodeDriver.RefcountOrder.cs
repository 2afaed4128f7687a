using System.Buffers.Binary;
using Block.Qcow2.Format;
using Block.Qcow2.Metadata;

namespace Block.Qcow2.Driver;

internal sealed partial class Qcow2NodeDriver
{
    /// <summary>QEMU's limit on the refcount table (8 MiB).</summary>
    private const long MaxRefcountTableBytes = 8L << 20;

    /// <summary>
    /// Rewrites the refcount structure with 2^<paramref name="newOrder"/>-bit entries (amend's refcount_bits): new
    /// refcount blocks and a new table are allocated through the old structure (so that they count themselves), filled
    /// from the old counts and written; one header write switches to them; then the old blocks and table are freed.
    /// </summary>
    /// <remarks>
    /// <para>The allocations follow QEMU's, so the result is byte-identical to <c>qemu-img amend</c>'s: walks over the
    /// clusters the old table covers allocate a block for each new block range holding a used cluster (first fit, in
    /// range order, as each range ends), and after a walk that allocated anything the new table is (re)allocated, its
    /// previous place freed at once; the walks repeat until one allocates nothing. A last walk fills and writes the
    /// blocks.</para>
    /// <para>Progress: every walk reports (walk × T + index, walks × T) at each of the T old table entries and once at
    /// its end; there are at least three walks (two allocating, one writing).</para>
    /// </remarks>
    private async ValueTask ChangeRefcountOrderLockedAsync(int newOrder, Action<long, long> status)
    {
        await FlushMetadataLockedAsync().ConfigureAwait(false);
        var newLayout = new Qcow2Layout(_layout.ClusterBits, _layout.ExtendedL2, newOrder);
        await EnsureRefcountsFitAsync(newLayout).ConfigureAwait(false);

        int cs = _layout.ClusterSize;
        var walker = new RefcountWalk(this, newLayout, status);
        long tableOffset = 0, tableEntries = 0;
        bool allocated;
        do
        {
            allocated = await walker.RunAsync(fill: false).ConfigureAwait(false);
            if (allocated)
            {
                if (tableOffset != 0)
                    await _refcounts.ReleaseUnreferencedAsync(tableOffset, tableEntries * 8 / cs).ConfigureAwait(false);
                tableEntries = walker.Table.Count;
                tableOffset = await _refcounts.AllocateAsync(tableEntries * 8 / cs).ConfigureAwait(false);
            }
        }
        while (allocated);
        await walker.RunAsync(fill: true).ConfigureAwait(false);

        var table = walker.Table.ToArray();
        var raw = new byte[table.Length * 8L];
        for (int i = 0; i < table.Length; i++)
            BinaryPrimitives.WriteUInt64BigEndian(raw.AsSpan(i * 8), table[i]);
        await CheckOverlapAsync(tableOffset, raw.Length, Qcow2OverlapFlags.None).ConfigureAwait(false);
        await _file.WriteAsync(tableOffset, raw.AsMemory()).ConfigureAwait(false);
        // The old blocks, with the new structure counted in them, then everything on disk before the switch.
        await _refcounts.Blocks.FlushAsync().ConfigureAwait(false);

        var oldTable = _refcounts.Table.ToArray();
        long oldTableOffset = _refcounts.TableOffset;
        int oldTableClusters = _refcounts.TableClusters;
        int oldOrder = _header.RefcountOrder;
        _header.RefcountOrder = newOrder;
        _header.RefcountTableOffset = (ulong)tableOffset;
        _header.RefcountTableClusters = (uint)(raw.Length / cs);
        try
        {
            await WriteHeaderAsync().ConfigureAwait(false);
        }
        catch
        {
            _header.RefcountOrder = oldOrder;
            _header.RefcountTableOffset = (ulong)oldTableOffset;
            _header.RefcountTableClusters = (uint)oldTableClusters;
            throw;
        }
        _layout = newLayout;
        _refcounts = NewRefcountManager(newLayout, table, tableOffset, raw.Length / cs, _refcounts.CacheEntries);
        RefreshMetadataMap();

        foreach (ulong e in oldTable)
        {
            long block = (long)(e & Qcow2Layout.OffsetMask);
            if (block != 0)
                await _refcounts.UpdateAsync(block >> _layout.ClusterBits, 1, -1, DiscardReason.Other).ConfigureAwait(false);
        }
        await _refcounts.UpdateAsync(oldTableOffset >> _layout.ClusterBits, oldTableClusters, -1, DiscardReason.Other).ConfigureAwait(false);
        await FlushMetadataLockedAsync().ConfigureAwait(false);
    }

    /// <summary>Refuses, before anything changes, a width too narrow for a refcount the image holds.</summary>
    private async ValueTask EnsureRefcountsFitAsync(Qcow2Layout newLayout)
    {
        if (newLayout.RefcountBits == 64)
            return;
        ulong max = (ulong)newLayout.MaxRefcount;
        var table = _refcounts.Table;
        long perBlock = _layout.RefcountBlockEntries;
        for (int b = 0; b < table.Count; b++)
        {
            long offset = (long)(table[b] & Qcow2Layout.OffsetMask);
            if (offset == 0)
                continue;
            var data = (await _refcounts.Blocks.GetAsync(offset).ConfigureAwait(false)).Data;
            for (long i = 0; i < perBlock; i++)
            {
                ulong refcount = RefcountBlock.Get(data, i, _layout.RefcountBits);
                if (refcount > max)
                {
                    throw new BlockException(Errno.ENOTSUP, $"Cannot decrease refcount entry width to {newLayout.RefcountBits} bits: " +
                        $"Cluster at offset {CHex((b * perBlock + i) << _layout.ClusterBits)} has a refcount of {refcount}");
                }
            }
        }
    }

    /// <summary>
    /// One pass over every cluster the old refcount table covers, in order, cut into the ranges of the new refcount
    /// blocks. Allocating passes give each range that holds a used cluster a block (and grow the new table to cover it);
    /// the filling pass copies the counts into the blocks and writes them.
    /// </summary>
    private sealed class RefcountWalk(Qcow2NodeDriver driver, Qcow2Layout newLayout, Action<long, long> status)
    {
        private readonly byte[] _block = new byte[newLayout.ClusterSize];
        private int _walk;
        private long _index;
        private long _position;
        private bool _empty = true;
        private bool _allocated;

        /// <summary>The new refcount table: block offsets by new block index, in whole clusters of entries.</summary>
        public List<ulong> Table { get; } = [];

        /// <summary>Runs one pass; true if it allocated a block.</summary>
        public async ValueTask<bool> RunAsync(bool fill)
        {
            var layout = driver._layout;
            int walk = _walk++;
            long walks = fill ? walk + 1 : Math.Max(walk + 2, 3);
            long perOld = layout.RefcountBlockEntries;
            long perNew = newLayout.RefcountBlockEntries;
            _index = 0;
            _position = 0;
            _empty = true;
            _allocated = false;
            Array.Clear(_block);
            for (int i = 0; i < driver._refcounts.Table.Count; i++)
            {
                long tableSize = driver._refcounts.Table.Count;
                status(walk * tableSize + i, walks * tableSize);
                long blockOffset = (long)(driver._refcounts.Table[i] & Qcow2Layout.OffsetMask);
                if (blockOffset == 0)
                {
                    // No block: every count it would hold is zero.
                    for (long remaining = perOld; remaining > 0;)
                    {
                        if (_position == perNew)
                            await CompleteAsync(fill).ConfigureAwait(false);
                        long take = Math.Min(remaining, perNew - _position);
                        _position += take;
                        remaining -= take;
                    }
                    continue;
                }
                var data = (await driver._refcounts.Blocks.GetAsync(blockOffset).ConfigureAwait(false)).Data;
                for (long k = 0; k < perOld; k++)
                {
                    if (_position == perNew && await CompleteAsync(fill).ConfigureAwait(false))
                    {
                        // The allocation may have changed this block, or pushed it out of the cache: read it again.
                        data = (await driver._refcounts.Blocks.GetAsync(blockOffset).ConfigureAwait(false)).Data;
                    }
                    ulong refcount = RefcountBlock.Get(data, k, layout.RefcountBits);
                    if (fill && refcount != 0)
                        RefcountBlock.Set(_block, _position, newLayout.RefcountBits, refcount);
                    _position++;
                    _empty &= refcount == 0;
                }
            }
            if (_position > 0)
                await CompleteAsync(fill).ConfigureAwait(false);
            long size = driver._refcounts.Table.Count;
            status((walk + 1) * size, walks * size);
            return _allocated;
        }

        /// <summary>Ends the current new block range; true if a block was allocated for it.</summary>
        private async ValueTask<bool> CompleteAsync(bool fill)
        {
            long index = _index++;
            bool empty = _empty;
            _position = 0;
            _empty = true;
            if (fill)
            {
                if (index < Table.Count && Table[(int)index] != 0)
                {
                    long offset = (long)Table[(int)index];
                    await driver.CheckOverlapAsync(offset, _block.Length, Qcow2OverlapFlags.None).ConfigureAwait(false);
                    await driver._file.WriteAsync(offset, _block.AsMemory()).ConfigureAwait(false);
                }
                Array.Clear(_block);
                return false;
            }
            if (empty)
                return false;
            if (index >= Table.Count)
            {
                long entriesPerCluster = newLayout.ClusterSize / 8;
                long size = (index + entriesPerCluster) / entriesPerCluster * entriesPerCluster;
                if (size * 8 > MaxRefcountTableBytes)
                    throw new BlockException(Errno.ENOTSUP, "This operation would make the refcount table grow beyond the maximum size supported by QEMU, aborting");
                while (Table.Count < size)
                    Table.Add(0);
            }
            if (Table[(int)index] != 0)
                return false;
            Table[(int)index] = (ulong)await driver._refcounts.AllocateAsync(1).ConfigureAwait(false);
            _allocated = true;
            return true;
        }
    }
}
