using System.Buffers.Binary;
using Block.Drivers;
using Block.Qapi;
using Block.Qcow2.Format;
using Block.Qcow2.Metadata;

namespace Block.Qcow2.Driver;

internal sealed partial class Qcow2NodeDriver
{
    /// <inheritdoc />
    public override ValueTask<ImageCheck> CheckAsync(CheckRepair repair) => CheckAsync(repair, null);

    /// <inheritdoc />
    public override async ValueTask<ImageCheck> CheckAsync(CheckRepair repair, TextWriter? messages)
    {
        if (repair != CheckRepair.None && _readOnly)
            throw new BlockException(Errno.EACCES, "Cannot repair a read-only image");
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            if (repair != CheckRepair.None)
                await FlushMetadataLockedAsync().ConfigureAwait(false);
            var result = await CheckLockedAsync(repair, messages ?? TextWriter.Null).ConfigureAwait(false);
            if (repair != CheckRepair.None)
            {
                await FlushMetadataLockedAsync().ConfigureAwait(false);
                // The counts are trusted again: allocations may fill holes below the end from now on, as in QEMU.
                if (result.Corruptions == 0 && result.CheckErrors == 0)
                    _refcounts.ResetFreeIndex();
                if (result.Corruptions == 0 && result.CheckErrors == 0
                    && (_header.Incompatible & (IncompatibleFeatures.Dirty | IncompatibleFeatures.Corrupt)) != 0)
                {
                    // A successful repair makes the image consistent again.
                    _header.Incompatible &= ~(IncompatibleFeatures.Dirty | IncompatibleFeatures.Corrupt);
                    _dirtyOnDisk = false;
                    await WriteHeaderAsync().ConfigureAwait(false);
                }
            }
            return result;
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>Repairs refcounts left stale by lazy refcounts, as QEMU does when it opens a dirty image read-write.</summary>
    private async ValueTask RebuildRefcountsAsync()
    {
        var result = await CheckLockedAsync(CheckRepair.All, TextWriter.Null).ConfigureAwait(false);
        await FlushMetadataLockedAsync().ConfigureAwait(false);
        if (result.Corruptions > 0 || result.CheckErrors > 0)
            throw new BlockException(Errno.EIO, "qcow2: could not repair the dirty image (run 'qemu-img check -r all')");
    }

    /// <summary>
    /// The in-memory reference counts a check builds: one counter per host cluster of the file, growing as references
    /// appear, but never for a reference that lies a cluster or more past the end of the file: as in QEMU, such a
    /// reference is reported and not counted (only the last cluster may be partly allocated), so that a corrupt entry
    /// cannot make the check allocate or loop by the size it claims.
    /// </summary>
    private sealed class ReferenceCounts
    {
        private readonly long _fileLength;
        private readonly int _clusterBits;
        private readonly TextWriter _log;
        private uint[] _counts;

        public ReferenceCounts(long fileLength, int clusterBits, TextWriter log)
        {
            _fileLength = fileLength;
            _clusterBits = clusterBits;
            _log = log;
            Length = (fileLength + (1L << clusterBits) - 1) >> clusterBits;
            _counts = new uint[Math.Max(Length, 1)];
        }

        public long Length { get; private set; }

        public uint this[long cluster] => cluster < _counts.Length ? _counts[cluster] : 0;

        /// <summary>Counts one reference to every cluster touched by <c>[offset, offset + bytes)</c>. False (reported) if it lies past the file.</summary>
        public bool Add(long offset, long bytes)
        {
            if (bytes <= 0)
                return true;
            if (offset < 0 || offset > _fileLength || offset + bytes - _fileLength >= 1L << _clusterBits)
            {
                _log.WriteLine($"ERROR: counting reference for region exceeding the end of the file by one cluster or more: offset 0x{offset:x} size 0x{bytes:x}");
                return false;
            }
            long first = offset >> _clusterBits;
            long last = (offset + bytes - 1) >> _clusterBits;
            if (last >= _counts.Length)
                Array.Resize(ref _counts, (int)(last + 1));
            for (long c = first; c <= last; c++)
            {
                if (_counts[c] != uint.MaxValue)
                    _counts[c]++;
            }
            Length = Math.Max(Length, last + 1);
            return true;
        }

        public void Set(long cluster, uint value)
        {
            if (cluster >= _counts.Length)
                Array.Resize(ref _counts, (int)Math.Max(cluster + 1, (long)_counts.Length * 2));
            _counts[cluster] = value;
            Length = Math.Max(Length, cluster + 1);
        }

        /// <summary>Drops one reference to <paramref name="cluster"/>.</summary>
        public void Remove(long cluster)
        {
            if (cluster < _counts.Length && _counts[cluster] > 0)
                _counts[cluster]--;
        }

    }

    private sealed class CheckState
    {
        public long Corruptions, Leaks, CheckErrors, CorruptionsFixed, LeaksFixed;
        public long Allocated, Fragmented, Compressed;
        public bool Rebuild;
    }

    private async ValueTask<ImageCheck> CheckLockedAsync(CheckRepair repair, TextWriter log)
    {
        int cs = _layout.ClusterSize;
        int bits = _layout.ClusterBits;
        long fileLength = _file.Length;
        var refs = new ReferenceCounts(fileLength, bits, log);
        var st = new CheckState();

        void Count(long offset, long bytes)
        {
            if (!refs.Add(offset, bytes))
                st.Corruptions++;
        }

        Count(0, cs);
        await CountL1Async(refs, st, log, (long)_header.L1TableOffset, _l1, active: true, repair).ConfigureAwait(false);
        foreach (var snapshot in _snapshots)
        {
            if (snapshot.L1Problem(cs) is { } problem)
            {
                log.WriteLine($"ERROR snapshot {snapshot.Id} ({snapshot.Name}) {problem}; snapshot table entry corrupted");
                st.Corruptions++;
                continue;
            }
            ulong[] l1;
            try
            {
                l1 = await ReadTableAsync(_file, (long)snapshot.L1TableOffset, snapshot.L1Size, "snapshot L1 table", fileLength).ConfigureAwait(false);
            }
            catch (ImageFormatException e)
            {
                log.WriteLine($"ERROR: snapshot {snapshot.Id} ({snapshot.Name}): {e.Message}");
                st.Corruptions++;
                continue;
            }
            for (int i = 0; i < l1.Length; i++)
                l1[i] &= ~Qcow2Layout.L1Reserved | Qcow2Layout.Copied;
            await CountL1Async(refs, st, log, (long)snapshot.L1TableOffset, l1, active: false, repair).ConfigureAwait(false);
        }
        if (_header.NbSnapshots > 0)
            Count((long)_header.SnapshotsOffset, _snapshotTableLength);
        Count(_refcounts.TableOffset, (long)_refcounts.TableClusters * cs);
        if (_header.CryptoHeader is { } crypto)
            Count((long)crypto.Offset, (long)crypto.Length);
        await CountBitmapsAsync(Count).ConfigureAwait(false);

        // Refcount blocks count themselves and must be sane, or the structure needs a rebuild.
        var table = _refcounts.Table;
        long fileClusters = (fileLength + cs - 1) >> bits;
        for (int i = 0; i < table.Count; i++)
        {
            long offset = (long)(table[i] & Qcow2Layout.OffsetMask);
            if (offset == 0)
                continue;
            if ((offset & (cs - 1)) != 0)
            {
                log.WriteLine($"ERROR refcount block {i} is not cluster aligned; refcount table entry corrupted");
                st.Corruptions++;
                st.Rebuild = true;
                continue;
            }
            if ((offset >> bits) >= fileClusters)
            {
                log.WriteLine($"ERROR refcount block {i} is outside image");
                st.Corruptions++;
                st.Rebuild = true;
                continue;
            }
            Count(offset, cs);
        }
        for (int i = 0; i < table.Count; i++)
        {
            long offset = (long)(table[i] & Qcow2Layout.OffsetMask);
            if (offset == 0 || (offset & (cs - 1)) != 0 || (offset >> bits) >= fileClusters)
                continue;
            if (refs[offset >> bits] != 1)
            {
                log.WriteLine($"ERROR refcount block {i} refcount={refs[offset >> bits]}");
                st.Corruptions++;
                st.Rebuild = true;
            }
        }

        long highest = await CompareRefcountsAsync(refs, st, log, repair).ConfigureAwait(false);

        if (st.Rebuild && (repair & CheckRepair.Errors) != 0)
        {
            log.WriteLine("Rebuilding refcount structure");
            highest = await RebuildRefcountStructureAsync(refs).ConfigureAwait(false);
            st.Corruptions = 0;
            st.Leaks = 0;
            st.Rebuild = false;
        }
        else if (st.Rebuild)
        {
            log.WriteLine("ERROR need to rebuild refcount structures");
        }

        await CheckCopiedFlagsAsync(st, log, repair).ConfigureAwait(false);

        return new ImageCheck
        {
            Filename = Node.Filename,
            Format = "qcow2",
            CheckErrors = st.CheckErrors,
            Corruptions = st.Corruptions,
            Leaks = st.Leaks,
            CorruptionsFixed = st.CorruptionsFixed,
            LeaksFixed = st.LeaksFixed,
            ImageEndOffset = (highest + 1) * cs,
            TotalClusters = (_size + cs - 1) >> bits,
            AllocatedClusters = st.Allocated,
            FragmentedClusters = st.Fragmented,
            CompressedClusters = st.Compressed,
        };
    }

    /// <summary>Counts an L1 table, its L2 tables and their clusters; for the active table also the allocation statistics.</summary>
    private async ValueTask CountL1Async(ReferenceCounts refs, CheckState st, TextWriter log, long l1Offset, ulong[] l1, bool active, CheckRepair repair)
    {
        int cs = _layout.ClusterSize;
        int bits = _layout.ClusterBits;
        if (l1.Length > 0 && !refs.Add(l1Offset, l1.Length * 8L))
            st.Corruptions++;
        var l2 = new byte[cs];
        for (int i = 0; i < l1.Length; i++)
        {
            long l2Offset = (long)(l1[i] & Qcow2Layout.OffsetMask);
            if (l2Offset == 0)
                continue;
            if (!refs.Add(l2Offset, cs))
            {
                // QEMU reads zeroes past the end of the file: an L2 table there has no entries to check.
                st.Corruptions++;
                continue;
            }
            if ((l2Offset & (cs - 1)) != 0)
            {
                log.WriteLine($"ERROR l2_offset={l2Offset:x}: Table is not cluster aligned; L1 entry corrupted");
                st.Corruptions++;
                continue;
            }
            if (l2Offset + cs > _file.Length)
            {
                log.WriteLine($"ERROR l2_offset={l2Offset:x}: L2 table is outside the image file");
                st.Corruptions++;
                continue;
            }
            // Dirty slices of active tables are in the cache; read through it.
            for (int s = 0; s < cs / _sliceBytes; s++)
            {
                var slice = _l2Cache.TryGet(l2Offset + (long)s * _sliceBytes);
                if (slice != null)
                    slice.Data.CopyTo(l2, s * _sliceBytes);
                else
                    await _file.ReadAsync(l2Offset + (long)s * _sliceBytes, l2.AsMemory(s * _sliceBytes, _sliceBytes)).ConfigureAwait(false);
            }
            long nextContiguous = 0;
            bool fixedAny = false;
            for (int j = 0; j < _layout.L2Entries; j++)
            {
                ulong entry = BinaryPrimitives.ReadUInt64BigEndian(l2.AsSpan(j * _layout.L2EntrySize));
                ulong bitmap = _layout.ExtendedL2 ? BinaryPrimitives.ReadUInt64BigEndian(l2.AsSpan(j * 16 + 8)) : 0;
                if ((entry & Qcow2Layout.CompressedFlag) != 0)
                {
                    if ((entry & Qcow2Layout.Copied) != 0)
                    {
                        log.WriteLine($"ERROR: coffset={entry & _layout.CompressedOffsetMask:x}: copied flag must never be set for compressed clusters");
                        st.Corruptions++;
                        entry &= ~Qcow2Layout.Copied;
                    }
                    if (_hasDataFile)
                    {
                        log.WriteLine($"ERROR compressed cluster {j} with data file, entry=0x{entry:x}");
                        st.Corruptions++;
                        continue;
                    }
                    if (bitmap != 0)
                    {
                        log.WriteLine($"ERROR compressed cluster {j} with non-zero subcluster allocation bitmap, entry=0x{entry:x}");
                        st.Corruptions++;
                        continue;
                    }
                    var (coffset, csize) = _layout.CompressedExtent(entry);
                    if (!refs.Add(coffset, csize))
                        st.Corruptions++;
                    if (active)
                    {
                        st.Allocated++;
                        st.Compressed++;
                        st.Fragmented++;
                    }
                    continue;
                }
                long offset = (long)(entry & Qcow2Layout.OffsetMask);
                bool host = offset != 0 || (_hasDataFile && (entry & Qcow2Layout.Copied) != 0);
                if (!host)
                {
                    if ((bitmap & 0xffffffffUL) != 0)
                    {
                        log.WriteLine("ERROR: Unallocated cluster has non-zero subcluster allocation bitmap");
                        st.Corruptions++;
                    }
                    continue;
                }
                if (_layout.ExtendedL2 && ((bitmap >> 32) & bitmap) != 0)
                {
                    log.WriteLine($"ERROR offset={offset:x}: Allocated cluster has corrupted subcluster allocation bitmap");
                    st.Corruptions++;
                }
                if ((offset & (cs - 1)) != 0)
                {
                    bool containsData = _layout.ExtendedL2 ? (bitmap & 0xffffffffUL) != 0 : (entry & Qcow2Layout.ZeroFlag) == 0;
                    if (!containsData && active && (repair & CheckRepair.Errors) != 0)
                    {
                        log.WriteLine($"Repairing offset={offset:x}: Preallocated cluster is not properly aligned; L2 entry corrupted.");
                        ulong fixedEntry = _layout.ExtendedL2 ? 0 : Qcow2Layout.ZeroFlag;
                        BinaryPrimitives.WriteUInt64BigEndian(l2.AsSpan(j * _layout.L2EntrySize), fixedEntry);
                        st.CorruptionsFixed++;
                        fixedAny = true;
                        continue;
                    }
                    log.WriteLine(containsData
                        ? $"ERROR offset={offset:x}: Data cluster is not properly aligned; L2 entry corrupted."
                        : $"ERROR offset={offset:x}: Preallocated cluster is not properly aligned; L2 entry corrupted.");
                    st.Corruptions++;
                }
                if (active)
                {
                    st.Allocated++;
                    if (nextContiguous != 0 && offset != nextContiguous)
                        st.Fragmented++;
                    nextContiguous = offset + cs;
                }
                if (!_hasDataFile && !refs.Add(offset, cs))
                    st.Corruptions++;
            }
            if (fixedAny)
            {
                await CheckOverlapAsync(l2Offset, cs, Qcow2OverlapFlags.ActiveL2).ConfigureAwait(false);
                await _file.WriteAsync(l2Offset, l2.AsMemory()).ConfigureAwait(false);
                for (int s = 0; s < cs / _sliceBytes; s++)
                    _l2Cache.Discard(l2Offset + (long)s * _sliceBytes);
            }
        }
    }

    /// <summary>Compares the computed counts with the refcount blocks, repairing what <paramref name="repair"/> allows.</summary>
    private async ValueTask<long> CompareRefcountsAsync(ReferenceCounts refs, CheckState st, TextWriter log, CheckRepair repair)
    {
        long highest = 0;
        long total = refs.Length;
        if (repair != CheckRepair.None)
            _refcounts.ReserveBelow(total);
        for (long i = 0; i < total; i++)
        {
            ulong onDisk;
            try
            {
                onDisk = await _refcounts.GetAsync(i).ConfigureAwait(false);
            }
            catch (BlockException e)
            {
                log.WriteLine($"Can't get refcount for cluster {i}: {e.Message}");
                st.CheckErrors++;
                continue;
            }
            ulong expected = refs[i];
            if (onDisk > 0 || expected > 0)
                highest = i;
            if (onDisk == expected)
                continue;
            bool leak = onDisk > expected;
            bool fix = onDisk != 0 && (leak ? (repair & CheckRepair.Leaks) != 0 : (repair & CheckRepair.Errors) != 0);
            if (onDisk == 0)
                st.Rebuild = true;
            log.WriteLine($"{(fix ? "Repairing" : leak ? "Leaked" : "ERROR")} cluster {i} refcount={onDisk} reference={expected}");
            if (fix)
            {
                try
                {
                    await _refcounts.UpdateAsync(i, 1, (long)expected - (long)onDisk, DiscardReason.Never).ConfigureAwait(false);
                    if (leak)
                        st.LeaksFixed++;
                    else
                        st.CorruptionsFixed++;
                    continue;
                }
                catch (BlockException)
                {
                    // Counted below as still present.
                }
            }
            if (leak)
                st.Leaks++;
            else
                st.Corruptions++;
        }
        return highest;
    }

    /// <summary>Checks (and with -r all fixes) the COPIED flags of the active L1 and L2 tables against the refcounts.</summary>
    private async ValueTask CheckCopiedFlagsAsync(CheckState st, TextWriter log, CheckRepair repair)
    {
        bool fix = (repair & CheckRepair.Errors) != 0;
        int cs = _layout.ClusterSize;
        for (int i = 0; i < _l1.Length; i++)
        {
            ulong l1Entry = _l1[i];
            long l2Offset = (long)(l1Entry & Qcow2Layout.OffsetMask);
            if (l2Offset == 0 || (l2Offset & (cs - 1)) != 0)
                continue;
            ulong refcount = await _refcounts.GetAsync(l2Offset >> _layout.ClusterBits).ConfigureAwait(false);
            if ((refcount == 1) != ((l1Entry & Qcow2Layout.Copied) != 0))
            {
                log.WriteLine($"{(fix ? "Repairing" : "ERROR")} OFLAG_COPIED L2 cluster: l1_index={i} l1_entry={l1Entry:x} refcount={refcount}");
                if (fix)
                {
                    _l1[i] = refcount == 1 ? l1Entry | Qcow2Layout.Copied : l1Entry & ~Qcow2Layout.Copied;
                    await WriteL1EntryAsync(i).ConfigureAwait(false);
                    st.CorruptionsFixed++;
                }
                else
                {
                    st.Corruptions++;
                }
            }
            if (l2Offset + cs > _file.Length)
                continue;
            for (int s = 0; s < cs / _sliceBytes; s++)
            {
                var slice = await _l2Cache.GetAsync(l2Offset + (long)s * _sliceBytes).ConfigureAwait(false);
                bool changed = false;
                for (int j = 0; j < _sliceEntries; j++)
                {
                    ulong entry = EntryAt(slice.Data, j);
                    if ((entry & Qcow2Layout.CompressedFlag) != 0)
                        continue;
                    long offset = (long)(entry & Qcow2Layout.OffsetMask);
                    if (offset == 0 && !(_hasDataFile && (entry & Qcow2Layout.Copied) != 0))
                        continue;
                    if ((offset & (cs - 1)) != 0)
                        continue;
                    ulong count = _hasDataFile ? 1 : await _refcounts.GetAsync(offset >> _layout.ClusterBits).ConfigureAwait(false);
                    if ((count == 1) == ((entry & Qcow2Layout.Copied) != 0))
                        continue;
                    log.WriteLine($"{(fix ? "Repairing" : "ERROR")} OFLAG_COPIED data cluster: l2_entry={entry:x} refcount={count}");
                    if (fix)
                    {
                        ulong repaired = count == 1 ? entry | Qcow2Layout.Copied : entry & ~Qcow2Layout.Copied;
                        BinaryPrimitives.WriteUInt64BigEndian(slice.Data.AsSpan(j * _layout.L2EntrySize), repaired);
                        changed = true;
                        st.CorruptionsFixed++;
                    }
                    else
                    {
                        st.Corruptions++;
                    }
                }
                if (changed)
                    MetadataCache.MarkDirty(slice);
            }
        }
    }

    /// <summary>
    /// Writes a new refcount structure (table and blocks) after every cluster in use, from the computed counts, and
    /// switches the header to it. The old structure's clusters become free.
    /// </summary>
    private async ValueTask<long> RebuildRefcountStructureAsync(ReferenceCounts refs)
    {
        int cs = _layout.ClusterSize;
        long perBlock = _layout.RefcountBlockEntries;
        // Forget the old structure's own clusters: they are not referenced by the new one.
        var oldTable = _refcounts.Table.ToArray();
        long fileClusters = (_file.Length + cs - 1) >> _layout.ClusterBits;
        for (long c = 0; c < (long)_refcounts.TableClusters; c++)
            refs.Remove((_refcounts.TableOffset >> _layout.ClusterBits) + c);
        foreach (ulong e in oldTable)
        {
            long offset = (long)(e & Qcow2Layout.OffsetMask);
            if (offset != 0 && (offset & (cs - 1)) == 0 && (offset >> _layout.ClusterBits) < fileClusters)
                refs.Remove(offset >> _layout.ClusterBits);
        }
        long used = 0;
        for (long c = refs.Length - 1; c >= 0; c--)
        {
            if (refs[c] != 0)
            {
                used = c + 1;
                break;
            }
        }
        long start = Math.Max(used, (_file.Length + cs - 1) >> _layout.ClusterBits);
        // The new table and blocks go at start; find sizes that cover themselves.
        long blocks = 0, tableClusters = 1;
        while (true)
        {
            long end = start + tableClusters + blocks;
            long neededBlocks = 0;
            for (long b = 0; b * perBlock < end; b++)
            {
                bool any = b * perBlock >= start;
                for (long c = b * perBlock; !any && c < Math.Min(end, (b + 1) * perBlock); c++)
                    any = refs[c] != 0;
                if (any)
                    neededBlocks++;
            }
            long neededTable = Math.Max(1, (((end + perBlock - 1) / perBlock) * 8 + cs - 1) / cs);
            if (neededBlocks == blocks && neededTable == tableClusters)
                break;
            blocks = neededBlocks;
            tableClusters = neededTable;
        }
        long totalEnd = start + tableClusters + blocks;
        for (long c = start; c < totalEnd; c++)
            refs.Set(c, 1);
        var table = new ulong[tableClusters * cs / 8];
        long next = start + tableClusters;
        var block = new byte[cs];
        for (long b = 0; b * perBlock < totalEnd; b++)
        {
            bool any = false;
            Array.Clear(block);
            for (long c = b * perBlock; c < Math.Min(totalEnd, (b + 1) * perBlock); c++)
            {
                uint v = refs[c];
                if (v == 0)
                    continue;
                any = true;
                RefcountBlock.Set(block, c - b * perBlock, _layout.RefcountBits, Math.Min(v, (ulong)_layout.MaxRefcount));
            }
            if (!any)
                continue;
            long offset = next++ << _layout.ClusterBits;
            table[b] = (ulong)offset;
            await _file.WriteAsync(offset, block.AsMemory()).ConfigureAwait(false);
        }
        var raw = new byte[tableClusters * cs];
        for (int i = 0; i < table.Length; i++)
            BinaryPrimitives.WriteUInt64BigEndian(raw.AsSpan(i * 8), table[i]);
        long tableOffset = start << _layout.ClusterBits;
        await _file.WriteAsync(tableOffset, raw.AsMemory()).ConfigureAwait(false);
        await _file.FlushAsync().ConfigureAwait(false);
        var header = new byte[12];
        BinaryPrimitives.WriteUInt64BigEndian(header, (ulong)tableOffset);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(8), (uint)tableClusters);
        await _file.WriteAsync(48, header.AsMemory()).ConfigureAwait(false);
        await _file.FlushAsync().ConfigureAwait(false);
        _header.RefcountTableOffset = (ulong)tableOffset;
        _header.RefcountTableClusters = (uint)tableClusters;
        _refcounts.Replace(table, tableOffset, (int)tableClusters);
        RefreshMetadataMap();
        return totalEnd - 1;
    }
}
