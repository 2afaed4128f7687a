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
        var log = new StringWriter { NewLine = "\n" };
        var result = await CheckLockedAsync(CheckRepair.All, log).ConfigureAwait(false);
        foreach (var line in log.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries))
            Node.Graph.Diagnose(line);
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
        var st = new CheckState();
        var refs = await CountReferencesAsync(st, log, repair).ConfigureAwait(false);
        long highest = await CompareRefcountsAsync(refs, st, log, repair).ConfigureAwait(false);

        if (st.Rebuild && (repair & CheckRepair.Errors) != 0)
        {
            log.WriteLine("Rebuilding refcount structure");
            await RebuildRefcountStructureAsync(refs).ConfigureAwait(false);
            (long oldCorruptions, long oldLeaks) = (st.Corruptions, st.Leaks);
            st.Corruptions = 0;
            st.Leaks = 0;
            st.Rebuild = false;
            // As QEMU: the references are counted again against the new structure; the old structure's clusters are
            // leaks now, repaired here (they count neither as leaks nor as fixed ones).
            var again = new CheckState();
            refs = await CountReferencesAsync(again, log, CheckRepair.None).ConfigureAwait(false);
            st.Corruptions += again.Corruptions;
            st.CheckErrors += again.CheckErrors;
            long freshLeaks = 0;
            if ((repair & CheckRepair.Leaks) != 0)
            {
                var recount = new CheckState();
                highest = await CompareRefcountsAsync(refs, recount, log, CheckRepair.Leaks).ConfigureAwait(false);
                if (recount.Rebuild)
                    log.WriteLine("ERROR rebuilt refcount structure is still broken");
                freshLeaks = recount.Leaks;
            }
            if (st.Corruptions < oldCorruptions)
                st.CorruptionsFixed += oldCorruptions - st.Corruptions;
            if (st.Leaks < oldLeaks)
                st.LeaksFixed += oldLeaks - st.Leaks;
            st.Leaks += freshLeaks;
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

    /// <summary>
    /// Counts every reference the image's metadata makes (header, L1/L2 tables and their clusters, snapshots, refcount
    /// structure, encryption header, bitmaps), reporting what is malformed; the active tables' statistics go to
    /// <paramref name="st"/>.
    /// </summary>
    private async ValueTask<ReferenceCounts> CountReferencesAsync(CheckState st, TextWriter log, CheckRepair repair)
    {
        int cs = _layout.ClusterSize;
        int bits = _layout.ClusterBits;
        long fileLength = _file.Length;
        var refs = new ReferenceCounts(fileLength, bits, log);

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
        await CountBitmapsAsync(refs, st, log, Count).ConfigureAwait(false);

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

        return refs;
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

    /// <summary>Counts the bitmap directory, bitmap tables and bitmap data clusters.</summary>
    private async ValueTask CountBitmapsAsync(ReferenceCounts refs, CheckState st, TextWriter log, Action<long, long> count)
    {
        if (_header.BitmapsExtension is not { Length: >= 24 } ext)
            return;
        uint nb = BinaryPrimitives.ReadUInt32BigEndian(ext);
        long size = (long)BinaryPrimitives.ReadUInt64BigEndian(ext.AsSpan(8));
        long offset = (long)BinaryPrimitives.ReadUInt64BigEndian(ext.AsSpan(16));
        if (size <= 0 || size > 1024L * 65535 || offset <= 0 || offset + size > _file.Length)
        {
            log.WriteLine("ERROR: bitmap directory lies outside the image");
            st.Corruptions++;
            return;
        }
        count(offset, size);
        var dir = new byte[size];
        await _file.ReadAsync(offset, dir.AsMemory()).ConfigureAwait(false);
        int pos = 0;
        for (uint i = 0; i < nb && pos + 24 <= dir.Length; i++)
        {
            long tableOffset = (long)BinaryPrimitives.ReadUInt64BigEndian(dir.AsSpan(pos));
            uint tableSize = BinaryPrimitives.ReadUInt32BigEndian(dir.AsSpan(pos + 8));
            int nameSize = BinaryPrimitives.ReadUInt16BigEndian(dir.AsSpan(pos + 18));
            uint extra = BinaryPrimitives.ReadUInt32BigEndian(dir.AsSpan(pos + 20));
            if (tableSize > 0 && tableOffset > 0 && tableOffset + tableSize * 8L <= _file.Length)
            {
                count(tableOffset, tableSize * 8L);
                var table = new byte[tableSize * 8L];
                await _file.ReadAsync(tableOffset, table.AsMemory()).ConfigureAwait(false);
                for (int j = 0; j < tableSize; j++)
                {
                    long data = (long)(BinaryPrimitives.ReadUInt64BigEndian(table.AsSpan(j * 8)) & Qcow2Layout.OffsetMask);
                    if (data != 0)
                        count(data, _layout.ClusterSize);
                }
            }
            pos += (int)((24 + extra + nameSize + 7) & ~7u);
        }
        _ = refs;
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
                    await _refcounts.UpdateAsync(i, 1, (long)expected - (long)onDisk, DiscardReason.Always).ConfigureAwait(false);
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
    /// Writes a new refcount structure from the computed counts and switches the header to it, placed as QEMU 7.2
    /// places it: a block for every block range holding a used cluster, each at the first free cluster (the old
    /// structure still counts as used, so nothing is overwritten before the switch), then the table at the first free
    /// clusters after that. The old structure's clusters are leaks afterwards, for the recount to free.
    /// </summary>
    private async ValueTask RebuildRefcountStructureAsync(ReferenceCounts refs)
    {
        int cs = _layout.ClusterSize;
        long perBlock = _layout.RefcountBlockEntries;
        long entriesPerTableCluster = cs / 8;
        var space = new FirstFit(refs);
        var blocks = new List<long>();
        long tableOffset = -1, tableClusters = 0;
        while (true)
        {
            // Blocks may land in ranges that had none, which then need one too: repeat until nothing is added.
            for (bool added = true; added;)
            {
                added = false;
                for (long b = 0; b * perBlock < refs.Length; b++)
                {
                    if ((b < blocks.Count && blocks[(int)b] != 0) || !RangeInUse(refs, b * perBlock, perBlock))
                        continue;
                    while (blocks.Count <= b)
                        blocks.Add(0);
                    blocks[(int)b] = space.Allocate(1) << _layout.ClusterBits;
                    added = true;
                }
            }
            long needed = Math.Max(1, (blocks.Count + entriesPerTableCluster - 1) / entriesPerTableCluster);
            if (tableOffset >= 0 && needed == tableClusters)
                break;
            if (tableOffset >= 0)
                space.Free(tableOffset >> _layout.ClusterBits, tableClusters);
            tableClusters = needed;
            tableOffset = space.Allocate(tableClusters) << _layout.ClusterBits;
            if (tableClusters * cs > MaxRefcountTableBytes)
                throw new BlockException(Errno.EFBIG, "Refcount table too large: the refcount structure cannot be rebuilt");
        }

        var table = new ulong[tableClusters * entriesPerTableCluster];
        var block = new byte[cs];
        for (int b = 0; b < blocks.Count; b++)
        {
            if (blocks[b] == 0)
                continue;
            Array.Clear(block);
            for (long c = b * perBlock; c < Math.Min(refs.Length, (b + 1) * perBlock); c++)
            {
                if (refs[c] is var v && v != 0)
                    RefcountBlock.Set(block, c - b * perBlock, _layout.RefcountBits, Math.Min(v, (ulong)_layout.MaxRefcount));
            }
            table[b] = (ulong)blocks[b];
            await _file.WriteAsync(blocks[b], block.AsMemory()).ConfigureAwait(false);
        }
        var raw = new byte[tableClusters * cs];
        for (int i = 0; i < table.Length; i++)
            BinaryPrimitives.WriteUInt64BigEndian(raw.AsSpan(i * 8), table[i]);
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
    }

    private static bool RangeInUse(ReferenceCounts refs, long start, long count)
    {
        for (long c = start; c < Math.Min(refs.Length, start + count); c++)
        {
            if (refs[c] != 0)
                return true;
        }
        return false;
    }

    /// <summary>First-fit allocation in the computed counts (a rebuild cannot use the refcount structure it replaces).</summary>
    private sealed class FirstFit(ReferenceCounts refs)
    {
        /// <summary>Every cluster below it is in use.</summary>
        private long _firstFree;

        /// <summary>Takes <paramref name="count"/> contiguous free clusters (count 1 each); returns the first one's index.</summary>
        public long Allocate(long count)
        {
            long run = 0, c = _firstFree;
            bool seenFree = false;
            for (; run < count; c++)
            {
                if (refs[c] != 0)
                {
                    run = 0;
                    continue;
                }
                if (!seenFree)
                {
                    _firstFree = c;
                    seenFree = true;
                }
                run++;
            }
            long start = c - count;
            for (long i = start; i < c; i++)
                refs.Set(i, 1);
            return start;
        }

        /// <summary>Gives clusters back.</summary>
        public void Free(long first, long count)
        {
            for (long i = first; i < first + count; i++)
                refs.Set(i, 0);
            _firstFree = Math.Min(_firstFree, first);
        }
    }
}
