using System.Buffers.Binary;
using Block.Drivers;
using Block.Graph;
using Block.Qapi;
using Block.Qcow2.Format;
using Block.Qcow2.Metadata;

namespace Block.Qcow2.Driver;

/// <summary>
/// <c>qemu-img check</c> for qcow2: the reference counts every table implies are computed in memory and compared with
/// the refcount blocks, then the COPIED flags of the active tables are compared with the refcounts. The findings, the
/// counts and the repairs are those of qemu-img 7.2 (observed on damaged images, see the oracle tests).
/// </summary>
/// <remarks>
/// <para>The order of a check with repair: count (repairing unaligned preallocated clusters of the active tables and
/// growing the file to a refcount block past its end); compare without repairing, to learn whether the refcount
/// structure must be rebuilt (a used cluster has refcount 0, or a refcount block entry is unusable); then either
/// rebuild it from the computed counts, count again and free the old structure as leaks, or, without a rebuild,
/// compare again repairing what the mode allows; last, the COPIED flags. A leaks-only repair also fixes COPIED flags,
/// but only when nothing else is left wrong, since only then are the refcounts known to be right.</para>
/// <para>Every table is read from the file as it is (an L2 table at an unaligned offset is read there, and anything
/// past the end of the file reads as zeroes), as QEMU reads it, so that the same damage gives the same findings.</para>
/// </remarks>
internal sealed partial class Qcow2NodeDriver
{
    /// <summary>Reserved bits of a refcount table entry (bits 0-8).</summary>
    private const ulong RefcountTableReserved = 0x1ffUL;

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
        ImageCheck result;
        var log = new StringWriter { NewLine = "\n" };
        try
        {
            result = await CheckLockedAsync(CheckRepair.All, log).ConfigureAwait(false);
        }
        catch (BlockException e)
        {
            throw new BlockException(Errno.EIO, "qcow2: could not repair the dirty image (run 'qemu-img check -r all')", e);
        }
        finally
        {
            // What the repair found and did reaches the user, as QEMU's messages do.
            foreach (var line in log.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries))
                Node.Graph.Print(line);
        }
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
        private readonly int _clusterBits;
        private readonly TextWriter _log;
        private uint[] _counts;

        public ReferenceCounts(long fileLength, int clusterBits, TextWriter log)
        {
            FileLength = fileLength;
            _clusterBits = clusterBits;
            _log = log;
            Length = (fileLength + (1L << clusterBits) - 1) >> clusterBits;
            _counts = new uint[Math.Max(Length, 1)];
        }

        /// <summary>The file's length (references must end less than a cluster past it).</summary>
        public long FileLength { get; set; }

        /// <summary>Clusters counted: the file's, and any a reference or an allocation added past it.</summary>
        public long Length { get; private set; }

        public uint this[long cluster] => cluster < _counts.Length ? _counts[cluster] : 0;

        /// <summary>Counts one reference to every cluster touched by <c>[offset, offset + bytes)</c>. False (reported) if it lies past the file.</summary>
        public bool Add(long offset, long bytes)
        {
            if (bytes <= 0)
                return true;
            if (offset < 0 || offset > long.MaxValue - bytes || offset + bytes - FileLength >= 1L << _clusterBits)
            {
                _log.WriteLine($"ERROR: counting reference for region exceeding the end of the file by one cluster or more: offset 0x{offset:x} size 0x{bytes:x}");
                return false;
            }
            long first = offset >> _clusterBits;
            long last = (offset + bytes - 1) >> _clusterBits;
            EnsureLength(last + 1);
            for (long c = first; c <= last; c++)
            {
                if (_counts[c] != uint.MaxValue)
                    _counts[c]++;
            }
            return true;
        }

        public void Set(long cluster, uint value)
        {
            EnsureLength(cluster + 1);
            _counts[cluster] = value;
        }

        /// <summary>Counts clusters up to <paramref name="clusters"/> (none referenced yet).</summary>
        public void EnsureLength(long clusters)
        {
            if (clusters > _counts.Length)
                Array.Resize(ref _counts, (int)Math.Max(clusters, Math.Min((long)_counts.Length * 2, Array.MaxLength)));
            Length = Math.Max(Length, clusters);
        }
    }

    /// <summary>What a check found and repaired so far (QEMU's <c>BdrvCheckResult</c>).</summary>
    private sealed class CheckState
    {
        public long Corruptions, Leaks, CheckErrors, CorruptionsFixed, LeaksFixed;
        public long Allocated, Fragmented, Compressed;

        public CheckState Clone() => (CheckState)MemberwiseClone();
    }

    /// <summary>What one check run carries besides its findings.</summary>
    private sealed class CheckRun(TextWriter log)
    {
        public TextWriter Log { get; } = log;

        /// <summary>The refcount structure cannot be repaired in place: it must be rebuilt from the computed counts.</summary>
        public bool Rebuild { get; set; }

        /// <summary>The last cluster in use or referenced, as the latest comparison found it.</summary>
        public long Highest { get; set; }
    }

    private async ValueTask<ImageCheck> CheckLockedAsync(CheckRepair repair, TextWriter log)
    {
        int cs = _layout.ClusterSize;
        var run = new CheckRun(log);
        var st = new CheckState();

        var refs = await CountReferencesAsync(st, run, repair).ConfigureAwait(false);
        var beforeCompare = st.Clone();
        await CompareRefcountsAsync(refs, st, run, CheckRepair.None).ConfigureAwait(false);

        if (run.Rebuild && (repair & CheckRepair.Errors) != 0)
        {
            var before = st.Clone();
            log.WriteLine("Rebuilding refcount structure");
            await RebuildRefcountStructureAsync(refs).ConfigureAwait(false);
            // The new structure is counted like any other metadata; the old one is now only leaked clusters.
            st.Corruptions = 0;
            st.Leaks = 0;
            st.Allocated = st.Fragmented = st.Compressed = 0;
            run.Rebuild = false;
            refs = await CountReferencesAsync(st, run, CheckRepair.None).ConfigureAwait(false);
            long freshLeaks = 0;
            if ((repair & CheckRepair.Leaks) != 0)
            {
                var scratch = new CheckState();
                await CompareRefcountsAsync(refs, scratch, run, CheckRepair.Leaks).ConfigureAwait(false);
                if (run.Rebuild)
                    log.WriteLine("ERROR rebuilt refcount structure is still broken");
                freshLeaks = scratch.Leaks;
            }
            if (st.Corruptions < before.Corruptions)
                st.CorruptionsFixed += before.Corruptions - st.Corruptions;
            if (st.Leaks < before.Leaks)
                st.LeaksFixed += before.Leaks - st.Leaks;
            st.Leaks += freshLeaks;
        }
        else if (repair != CheckRepair.None)
        {
            if (run.Rebuild)
            {
                log.WriteLine("ERROR need to rebuild refcount structures");
                throw new BlockException(Errno.EIO, ErrnoText.Describe(Errno.EIO));
            }
            if (st.Leaks > 0 || st.Corruptions > 0)
            {
                st = beforeCompare;
                await CompareRefcountsAsync(refs, st, run, repair).ConfigureAwait(false);
            }
        }

        await CheckCopiedFlagsAsync(st, run, repair).ConfigureAwait(false);

        return new ImageCheck
        {
            Filename = Node.Filename,
            Format = "qcow2",
            CheckErrors = st.CheckErrors,
            Corruptions = st.Corruptions,
            Leaks = st.Leaks,
            CorruptionsFixed = st.CorruptionsFixed,
            LeaksFixed = st.LeaksFixed,
            ImageEndOffset = (run.Highest + 1) * cs,
            TotalClusters = (_size + cs - 1) >> _layout.ClusterBits,
            AllocatedClusters = st.Allocated,
            FragmentedClusters = st.Fragmented,
            CompressedClusters = st.Compressed,
        };
    }

    /// <summary>
    /// Counts every reference the image's metadata makes: header, active and snapshot tables and the clusters they
    /// reach, snapshot table, refcount table, encryption header, bitmaps, refcount blocks.
    /// </summary>
    private async ValueTask<ReferenceCounts> CountReferencesAsync(CheckState st, CheckRun run, CheckRepair repair)
    {
        int cs = _layout.ClusterSize;
        var refs = new ReferenceCounts(_file.Length, _layout.ClusterBits, run.Log);

        void Count(long offset, long bytes)
        {
            if (!refs.Add(offset, bytes))
                st.Corruptions++;
        }

        Count(0, cs);
        await CountL1Async(refs, st, run, (long)_header.L1TableOffset, _header.L1Size, active: true, repair).ConfigureAwait(false);
        foreach (var snapshot in _snapshots)
        {
            if (snapshot.L1Problem(cs) is { } problem)
            {
                run.Log.WriteLine($"ERROR snapshot {snapshot.Id} ({snapshot.Name}) {problem}; snapshot table entry corrupted");
                st.Corruptions++;
                continue;
            }
            await CountL1Async(refs, st, run, (long)snapshot.L1TableOffset, snapshot.L1Size, active: false, repair).ConfigureAwait(false);
        }
        if (_header.NbSnapshots > 0)
            Count((long)_header.SnapshotsOffset, _snapshotTableLength);
        Count(_refcounts.TableOffset, (long)_refcounts.TableClusters * cs);
        if (_header.CryptoHeader is { } crypto)
            Count((long)crypto.Offset, (long)crypto.Length);
        await CountBitmapsAsync(Count).ConfigureAwait(false);
        await CountRefcountBlocksAsync(refs, st, run, repair).ConfigureAwait(false);
        return refs;
    }

    /// <summary>
    /// Counts the refcount blocks, each of which must be referenced exactly once: an entry with reserved bits, an
    /// unaligned block, a block past the end of the file (which a repair makes room for) or a block that is also
    /// something else all call for a rebuild.
    /// </summary>
    private async ValueTask CountRefcountBlocksAsync(ReferenceCounts refs, CheckState st, CheckRun run, CheckRepair repair)
    {
        int cs = _layout.ClusterSize;
        var table = _refcounts.Table;
        for (int i = 0; i < table.Count; i++)
        {
            ulong entry = table[i];
            if ((entry & RefcountTableReserved) != 0)
            {
                run.Log.WriteLine($"ERROR refcount table entry {i} has reserved bits set");
                st.Corruptions++;
                run.Rebuild = true;
                continue;
            }
            ulong offset = entry & ~RefcountTableReserved;
            if (offset == 0)
                continue;
            if ((offset & (ulong)(cs - 1)) != 0)
            {
                run.Log.WriteLine($"ERROR refcount block {i} is not cluster aligned; refcount table entry corrupted");
                st.Corruptions++;
                run.Rebuild = true;
                continue;
            }
            ulong cluster = offset >> _layout.ClusterBits;
            if (cluster >= (ulong)refs.Length)
            {
                st.Corruptions++;
                run.Rebuild = true;
                if ((repair & CheckRepair.Errors) == 0 || offset > (ulong)(BlockNode.MaxLength - cs))
                {
                    run.Log.WriteLine($"ERROR refcount block {i} is outside image");
                    continue;
                }
                // Make the file long enough to hold the block, so that the rebuild can count it like the others.
                run.Log.WriteLine($"Repairing refcount block {i} is outside image");
                try
                {
                    await _file.TruncateAsync((long)offset + cs, PreallocMode.Off, exact: false).ConfigureAwait(false);
                }
                catch (BlockException e)
                {
                    run.Log.WriteLine($"ERROR could not resize image: {e.Message}");
                    continue;
                }
                refs.FileLength = _file.Length;
                refs.EnsureLength((refs.FileLength + cs - 1) >> _layout.ClusterBits);
                if (cluster >= (ulong)refs.Length)
                    continue;
            }
            if (!refs.Add((long)offset, cs))
            {
                st.Corruptions++;
                continue;
            }
            uint count = refs[(long)cluster];
            if (count != 1)
            {
                run.Log.WriteLine($"ERROR refcount block {i} refcount={count}");
                st.Corruptions++;
                run.Rebuild = true;
            }
        }
    }

    /// <summary>
    /// Counts an L1 table, its L2 tables and the clusters they reach; for the active table also the allocation
    /// statistics, and with <see cref="CheckRepair.Errors"/> the repair of unaligned preallocated clusters.
    /// </summary>
    private async ValueTask CountL1Async(ReferenceCounts refs, CheckState st, CheckRun run, long l1Offset, uint l1Size, bool active, CheckRepair repair)
    {
        int cs = _layout.ClusterSize;
        if (l1Size == 0)
            return;
        if (!refs.Add(l1Offset, l1Size * 8L))
        {
            st.Corruptions++;
            return;
        }
        var l1 = await ReadTableForCheckAsync(l1Offset, l1Size).ConfigureAwait(false);
        for (int i = 0; i < l1.Length; i++)
        {
            ulong entry = l1[i];
            if ((entry & Qcow2Layout.L1Reserved) != 0)
            {
                run.Log.WriteLine($"ERROR found L1 entry with reserved bits set: {entry:x}");
                st.Corruptions++;
            }
            long l2Offset = (long)(entry & Qcow2Layout.OffsetMask);
            if (l2Offset == 0)
                continue;
            if (!refs.Add(l2Offset, cs))
            {
                // Past the end of the file: the table would read as zeroes, with nothing to count.
                st.Corruptions++;
                continue;
            }
            if ((l2Offset & (cs - 1)) != 0)
            {
                // QEMU goes on and reads the table at the unaligned offset; so do we, to find what it finds.
                run.Log.WriteLine($"ERROR l2_offset={l2Offset:x}: Table is not cluster aligned; L1 entry corrupted");
                st.Corruptions++;
            }
            await CountL2Async(refs, st, run, l2Offset, active, repair).ConfigureAwait(false);
        }
    }

    /// <summary>Counts one L2 table's clusters (see <see cref="CountL1Async"/>).</summary>
    private async ValueTask CountL2Async(ReferenceCounts refs, CheckState st, CheckRun run, long l2Offset, bool active, CheckRepair repair)
    {
        int cs = _layout.ClusterSize;
        var log = run.Log;
        var l2 = await ReadL2ForCheckAsync(l2Offset).ConfigureAwait(false);
        long nextContiguous = 0;
        bool repaired = false;
        for (int j = 0; j < _layout.L2Entries; j++)
        {
            ulong entry = BinaryPrimitives.ReadUInt64BigEndian(l2.AsSpan(j * _layout.L2EntrySize));
            ulong bitmap = _layout.ExtendedL2 ? BinaryPrimitives.ReadUInt64BigEndian(l2.AsSpan(j * 16 + 8)) : 0;
            if ((entry & Qcow2Layout.CompressedFlag) != 0)
            {
                if ((entry & Qcow2Layout.Copied) != 0)
                {
                    log.WriteLine($"ERROR: coffset={QemuText.AlternateHex(entry & _layout.CompressedOffsetMask)}: copied flag must never be set for compressed clusters");
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
                if (active)
                {
                    // Compressed clusters count as fragmented: neighbours share sectors that are read again.
                    st.Allocated++;
                    st.Compressed++;
                    st.Fragmented++;
                }
                long coffset = (long)(entry & _layout.CompressedOffsetMask);
                long sectors = (long)((entry >> _layout.CompressedSizeShift) & _layout.CompressedSizeMask) + 1;
                if (!refs.Add(coffset & ~511L, sectors * 512))
                    st.Corruptions++;
                continue;
            }
            if ((entry & Qcow2Layout.L2Reserved) != 0)
            {
                log.WriteLine($"ERROR found l2 entry with reserved bits set: {entry:x}");
                st.Corruptions++;
            }
            long offset = (long)(entry & Qcow2Layout.OffsetMask);
            bool host = offset != 0 || (_hasDataFile && (entry & Qcow2Layout.Copied) != 0);
            if (!host)
            {
                if ((bitmap & 0xffffffffUL) != 0)
                {
                    log.WriteLine("ERROR: Unallocated cluster has non-zero subcluster allocation map");
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
                    // Nothing to lose: the cluster reads as zeroes, and so will the entry that replaces it.
                    log.WriteLine($"Repairing offset={offset:x}: Preallocated cluster is not properly aligned; L2 entry corrupted.");
                    BinaryPrimitives.WriteUInt64BigEndian(l2.AsSpan(j * _layout.L2EntrySize), _layout.ExtendedL2 ? 0 : Qcow2Layout.ZeroFlag);
                    if (_layout.ExtendedL2)
                        BinaryPrimitives.WriteUInt64BigEndian(l2.AsSpan(j * 16 + 8), 0xffffffffUL << 32);
                    st.CorruptionsFixed++;
                    repaired = true;
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
        if (repaired)
            await WriteL2ForCheckAsync(l2Offset, l2, st, log).ConfigureAwait(false);
    }

    /// <summary>
    /// Compares the computed counts with the refcount blocks, repairing what <paramref name="repair"/> allows: leaks
    /// (on-disk count too high) with <see cref="CheckRepair.Leaks"/>, counts too low with
    /// <see cref="CheckRepair.Errors"/>. A used cluster whose count is 0 cannot be repaired in place (its refcount
    /// block may be what is missing): it asks for a rebuild.
    /// </summary>
    private async ValueTask CompareRefcountsAsync(ReferenceCounts refs, CheckState st, CheckRun run, CheckRepair repair)
    {
        for (long i = 0; i < refs.Length; i++)
        {
            ulong onDisk;
            try
            {
                onDisk = await GetRefcountForCheckAsync(i).ConfigureAwait(false);
            }
            catch (BlockException e)
            {
                run.Log.WriteLine($"Can't get refcount for cluster {i}: {ErrnoText.Describe(e.Errno)}");
                st.CheckErrors++;
                continue;
            }
            ulong expected = refs[i];
            if (onDisk > 0 || expected > 0)
                run.Highest = i;
            if (onDisk == expected)
                continue;
            bool leak = onDisk > expected;
            if (onDisk == 0)
                run.Rebuild = true;
            bool fix = onDisk != 0 && (leak ? (repair & CheckRepair.Leaks) != 0 : (repair & CheckRepair.Errors) != 0);
            run.Log.WriteLine($"{(fix ? "Repairing" : leak ? "Leaked" : "ERROR")} cluster {i} refcount={onDisk} reference={expected}");
            if (fix)
            {
                try
                {
                    // As QEMU, a cluster a repair frees is discarded in the file whatever the discard options say.
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
    }

    /// <summary>
    /// Checks the COPIED flags of the active L1 and L2 tables against the refcounts (set exactly when the refcount is
    /// 1), and repairs them with <see cref="CheckRepair.Errors"/>, or with <see cref="CheckRepair.Leaks"/> when the
    /// check found nothing else wrong so far.
    /// </summary>
    private async ValueTask CheckCopiedFlagsAsync(CheckState st, CheckRun run, CheckRepair repair)
    {
        bool fix = (repair & CheckRepair.Errors) != 0
            || ((repair & CheckRepair.Leaks) != 0 && st.CheckErrors == 0 && st.Corruptions == 0 && st.Leaks == 0);
        long l1Offset = (long)_header.L1TableOffset;
        var l1 = await ReadTableForCheckAsync(l1Offset, _header.L1Size).ConfigureAwait(false);
        for (int i = 0; i < l1.Length; i++)
        {
            ulong l1Entry = l1[i];
            long l2Offset = (long)(l1Entry & Qcow2Layout.OffsetMask);
            if (l2Offset == 0)
                continue;
            ulong refcount;
            try
            {
                refcount = await GetRefcountForCheckAsync(l2Offset >> _layout.ClusterBits).ConfigureAwait(false);
            }
            catch (BlockException)
            {
                // Reported by the comparison already.
                continue;
            }
            if ((refcount == 1) != ((l1Entry & Qcow2Layout.Copied) != 0))
            {
                run.Log.WriteLine($"{(fix ? "Repairing" : "ERROR")} OFLAG_COPIED L2 cluster: l1_index={i} l1_entry={l1Entry:x} refcount={refcount}");
                if (fix)
                {
                    ulong repaired = refcount == 1 ? l1Entry | Qcow2Layout.Copied : l1Entry & ~Qcow2Layout.Copied;
                    await WriteRawL1EntryAsync(i, repaired).ConfigureAwait(false);
                    st.CorruptionsFixed++;
                }
                else
                {
                    st.Corruptions++;
                }
            }

            var l2 = await ReadL2ForCheckAsync(l2Offset).ConfigureAwait(false);
            bool changed = false;
            for (int j = 0; j < _layout.L2Entries; j++)
            {
                ulong entry = BinaryPrimitives.ReadUInt64BigEndian(l2.AsSpan(j * _layout.L2EntrySize));
                if ((entry & Qcow2Layout.CompressedFlag) != 0)
                    continue;
                long offset = (long)(entry & Qcow2Layout.OffsetMask);
                if (offset == 0 && !(_hasDataFile && (entry & Qcow2Layout.Copied) != 0))
                    continue;
                ulong count;
                try
                {
                    count = _hasDataFile ? 1 : await GetRefcountForCheckAsync(offset >> _layout.ClusterBits).ConfigureAwait(false);
                }
                catch (BlockException)
                {
                    continue;
                }
                if ((count == 1) == ((entry & Qcow2Layout.Copied) != 0))
                    continue;
                run.Log.WriteLine($"{(fix ? "Repairing" : "ERROR")} OFLAG_COPIED data cluster: l2_entry={entry:x} refcount={count}");
                if (fix)
                {
                    ulong repaired = count == 1 ? entry | Qcow2Layout.Copied : entry & ~Qcow2Layout.Copied;
                    BinaryPrimitives.WriteUInt64BigEndian(l2.AsSpan(j * _layout.L2EntrySize), repaired);
                    changed = true;
                    st.CorruptionsFixed++;
                }
                else
                {
                    st.Corruptions++;
                }
            }
            if (changed)
                await WriteL2ForCheckAsync(l2Offset, l2, st, run.Log).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// A cluster's refcount as the refcount structure says. An unusable refcount block is a corruption, signalled as
    /// QEMU signals it (which makes a writable image unusable, so that a rebuild then fails as QEMU's does).
    /// </summary>
    private async ValueTask<ulong> GetRefcountForCheckAsync(long cluster)
    {
        try
        {
            return await _refcounts.GetAsync(cluster).ConfigureAwait(false);
        }
        catch (Qcow2CorruptionException e)
        {
            throw await SignalCorruptionAsync(e.Message, e.Offset, e.Size).ConfigureAwait(false);
        }
    }

    /// <summary>Reads <paramref name="entries"/> table entries at <paramref name="offset"/>; past the end of the file they read as 0.</summary>
    private async ValueTask<ulong[]> ReadTableForCheckAsync(long offset, uint entries)
    {
        var raw = await ReadZeroPaddedAsync(offset, entries * 8L).ConfigureAwait(false);
        var table = new ulong[entries];
        for (int i = 0; i < table.Length; i++)
            table[i] = BinaryPrimitives.ReadUInt64BigEndian(raw.AsSpan(i * 8));
        return table;
    }

    /// <summary>Reads the L2 table at <paramref name="l2Offset"/>, aligned or not, taking slices the cache holds from the cache.</summary>
    private async ValueTask<byte[]> ReadL2ForCheckAsync(long l2Offset)
    {
        var l2 = await ReadZeroPaddedAsync(l2Offset, _layout.ClusterSize).ConfigureAwait(false);
        for (int s = 0; s < _layout.ClusterSize / _sliceBytes; s++)
            _l2Cache.TryGet(l2Offset + (long)s * _sliceBytes)?.Data.CopyTo(l2, s * _sliceBytes);
        return l2;
    }

    /// <summary>Reads <paramref name="bytes"/> at <paramref name="offset"/> of the image file; what lies past its end reads as zeroes.</summary>
    private async ValueTask<byte[]> ReadZeroPaddedAsync(long offset, long bytes)
    {
        var buffer = new byte[bytes];
        long inFile = Math.Min(bytes, _file.Length - offset);
        if (inFile > 0)
            await _file.ReadAsync(offset, buffer.AsMemory(0, (int)inFile)).ConfigureAwait(false);
        return buffer;
    }

    /// <summary>Writes a repaired L2 table back (where it is, as QEMU does) and drops its cached slices.</summary>
    private async ValueTask WriteL2ForCheckAsync(long l2Offset, byte[] l2, CheckState st, TextWriter log)
    {
        try
        {
            await CheckOverlapAsync(l2Offset, l2.Length, Qcow2OverlapFlags.ActiveL2).ConfigureAwait(false);
        }
        catch (BlockException e)
        {
            log.WriteLine($"ERROR: Could not write L2 table; metadata overlap check failed: {ErrnoText.Describe(e.Errno)}");
            st.CheckErrors++;
            throw;
        }
        try
        {
            await _file.WriteAsync(l2Offset, l2.AsMemory()).ConfigureAwait(false);
        }
        catch (BlockException e)
        {
            log.WriteLine($"ERROR: Could not write L2 table: {ErrnoText.Describe(e.Errno)}");
            st.CheckErrors++;
            throw;
        }
        for (int s = 0; s < l2.Length / _sliceBytes; s++)
            _l2Cache.Discard(l2Offset + (long)s * _sliceBytes);
    }

    /// <summary>Writes active L1 entry <paramref name="index"/> as <paramref name="entry"/>, reserved bits included, and updates the in-memory table.</summary>
    private async ValueTask WriteRawL1EntryAsync(int index, ulong entry)
    {
        var bytes = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(bytes, entry);
        long at = (long)_header.L1TableOffset + index * 8L;
        await CheckOverlapAsync(at, 8, Qcow2OverlapFlags.ActiveL1).ConfigureAwait(false);
        await _file.WriteAsync(at, bytes.AsMemory()).ConfigureAwait(false);
        await _file.FlushAsync().ConfigureAwait(false);
        _l1[index] = entry & (~Qcow2Layout.L1Reserved | Qcow2Layout.Copied);
    }

    /// <summary>
    /// Replaces the refcount structure by one built from the computed counts: refcount blocks for every range holding
    /// a used cluster and then the table, each in the first free clusters the counts show (growing the file only when
    /// no hole fits), written before the header is switched to the new table in one write. The old table and blocks
    /// are still counted, so the caller frees them as leaks once it has counted the new structure.
    /// </summary>
    private async ValueTask RebuildRefcountStructureAsync(ReferenceCounts refs)
    {
        int cs = _layout.ClusterSize;
        long perBlock = _layout.RefcountBlockEntries;
        long firstFree = 0;

        long Allocate(long count)
        {
            while (refs[firstFree] != 0)
                firstFree++;
            long start = firstFree;
            for (long c = start; c < start + count; c++)
            {
                if (refs[c] != 0)
                {
                    start = c + 1;
                    c = start - 1;
                }
            }
            for (long c = start; c < start + count; c++)
                refs.Set(c, 1);
            return start;
        }

        bool RangeUsed(long block)
        {
            long end = Math.Min(refs.Length, (block + 1) * perBlock);
            for (long c = block * perBlock; c < end; c++)
            {
                if (refs[c] != 0)
                    return true;
            }
            return false;
        }

        var blocks = new List<long>();
        long tableStart = -1, tableClusters = 0;
        while (true)
        {
            // A block for every range in use; placing a block may put a new range in use.
            bool placed = true;
            while (placed)
            {
                placed = false;
                for (long b = 0; b * perBlock < refs.Length; b++)
                {
                    while (blocks.Count <= b)
                        blocks.Add(0);
                    if (blocks[(int)b] == 0 && RangeUsed(b))
                    {
                        blocks[(int)b] = Allocate(1);
                        placed = true;
                    }
                }
            }
            long needed = Math.Max(1, (blocks.Count * 8L + cs - 1) / cs);
            if (tableStart >= 0 && needed <= tableClusters)
                break;
            if (tableStart >= 0)
            {
                for (long c = tableStart; c < tableStart + tableClusters; c++)
                    refs.Set(c, 0);
                firstFree = Math.Min(firstFree, tableStart);
            }
            tableClusters = needed;
            tableStart = Allocate(tableClusters);
        }

        var block = new byte[cs];
        var table = new ulong[tableClusters * cs / 8];
        for (int b = 0; b < blocks.Count; b++)
        {
            if (blocks[b] == 0)
                continue;
            Array.Clear(block);
            long end = Math.Min(refs.Length, (b + 1) * perBlock);
            for (long c = b * perBlock; c < end; c++)
            {
                uint v = refs[c];
                if (v != 0)
                    RefcountBlock.Set(block, c - b * perBlock, _layout.RefcountBits, Math.Min(v, (ulong)_layout.MaxRefcount));
            }
            long offset = blocks[b] << _layout.ClusterBits;
            await WriteForRebuildAsync(offset, block, "refblock").ConfigureAwait(false);
            table[b] = (ulong)offset;
        }
        var raw = new byte[tableClusters * cs];
        for (int i = 0; i < table.Length; i++)
            BinaryPrimitives.WriteUInt64BigEndian(raw.AsSpan(i * 8), table[i]);
        long tableOffset = tableStart << _layout.ClusterBits;
        await WriteForRebuildAsync(tableOffset, raw, "reftable").ConfigureAwait(false);
        try
        {
            ThrowIfCorrupt();
            await _file.FlushAsync().ConfigureAwait(false);
            await WriteRefcountTableHeaderAsync((ulong)tableOffset, (uint)tableClusters).ConfigureAwait(false);
        }
        catch (BlockException e)
        {
            throw new BlockException(e.Errno, $"ERROR setting reftable: {ErrnoText.Describe(e.Errno)}", e);
        }
        _refcounts.Replace(table, tableOffset, (int)tableClusters);
        RefreshMetadataMap();
    }

    /// <summary>Writes one cluster range of the new refcount structure; failing is fatal to the check.</summary>
    private async ValueTask WriteForRebuildAsync(long offset, byte[] data, string what)
    {
        try
        {
            ThrowIfCorrupt();
            await CheckOverlapAsync(offset, data.Length, Qcow2OverlapFlags.None).ConfigureAwait(false);
            await _file.WriteAsync(offset, data.AsMemory()).ConfigureAwait(false);
        }
        catch (BlockException e)
        {
            throw new BlockException(e.Errno, $"ERROR writing {what}: {ErrnoText.Describe(e.Errno)}", e);
        }
    }
}
