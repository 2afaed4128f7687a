using Block.Drivers.Blkdebug;
using System.Buffers.Binary;
using System.Globalization;
using Block.Io;
using Block.Qapi;
using Block.Qcow2.Format;
using Block.Qcow2.Metadata;

namespace Block.Qcow2.Driver;

internal sealed partial class Qcow2NodeDriver
{
    /// <inheritdoc />
    public override IReadOnlyList<SnapshotInfo> Snapshots => [.. _snapshots.Select(ToInfo)];

    private static SnapshotInfo ToInfo(Qcow2Snapshot s)
    {
        long icount = Qcow2SnapshotTable.Icount(s);
        return new SnapshotInfo
        {
            Id = s.Id,
            Name = s.Name,
            VmStateSize = (long)s.VmStateSizeLarge,
            DateSec = s.DateSeconds,
            DateNsec = s.DateNanoseconds,
            VmClockSec = (long)(s.VmClockNanoseconds / 1_000_000_000),
            VmClockNsec = (long)(s.VmClockNanoseconds % 1_000_000_000),
            Icount = icount == -1 ? null : icount,
        };
    }

    /// <inheritdoc />
    /// <remarks>
    /// QEMU's order: the active L1 table is copied to new clusters, every L2 table and cluster it reaches gains a
    /// reference (so the active tables lose their COPIED flags and the next write to them copies), the metadata is
    /// flushed, a new snapshot table is written and the header switched to it in one write, and the old table freed.
    /// A crash before the switch leaves leaked clusters only.
    /// </remarks>
    public override async ValueTask<SnapshotInfo> CreateSnapshotAsync(SnapshotInfo snapshot)
    {
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            ThrowIfCorrupt();
            if (_snapshots.Count >= Qcow2SnapshotTable.MaxSnapshots)
                throw new BlockException(Errno.EFBIG, "Too many snapshots");
            string id = snapshot.Id;
            if (id.Length == 0)
                id = NextSnapshotId();
            else if (_snapshots.Any(s => s.Id == id))
                throw new BlockException(Errno.EEXIST, "File exists");
            await FlushMetadataLockedAsync().ConfigureAwait(false);

            // The snapshot's copy of the active L1 table.
            long l1Bytes = _l1.Length * 8L;
            long l1Offset = 0;
            if (l1Bytes > 0)
            {
                l1Offset = await _refcounts.AllocateAsync((l1Bytes + _layout.ClusterSize - 1) / _layout.ClusterSize).ConfigureAwait(false);
                await CheckOverlapAsync(l1Offset, l1Bytes, Qcow2OverlapFlags.None).ConfigureAwait(false);
                await _file.WriteAsync(l1Offset, TableBytes(_l1)).ConfigureAwait(false);
            }

            try
            {
                await EnsureRefcountsCanGrowAsync(_l1).ConfigureAwait(false);
            }
            catch
            {
                if (l1Bytes > 0)
                    await _refcounts.ReleaseAsync(l1Offset, (l1Bytes + _layout.ClusterSize - 1) / _layout.ClusterSize).ConfigureAwait(false);
                throw;
            }
            await UpdateTreeRefcountsAsync(_l1, (long)_header.L1TableOffset, active: true, addend: +1, DiscardReason.Snapshot).ConfigureAwait(false);
            await FlushMetadataLockedAsync().ConfigureAwait(false);

            var entry = new Qcow2Snapshot
            {
                L1TableOffset = (ulong)l1Offset,
                L1Size = (uint)_l1.Length,
                Id = id,
                Name = snapshot.Name,
                DateSeconds = (uint)snapshot.DateSec,
                DateNanoseconds = (uint)snapshot.DateNsec,
                VmClockNanoseconds = (ulong)(snapshot.VmClockSec * 1_000_000_000 + snapshot.VmClockNsec),
                VmStateSize = (uint)Math.Min(snapshot.VmStateSize, uint.MaxValue),
                // QEMU 7.2 writes the 24 bytes of extra data in version 2 images too (older readers skip them).
                ExtraData = Qcow2SnapshotTable.NewExtraData((ulong)snapshot.VmStateSize, (ulong)_size, snapshot.Icount ?? -1),
            };
            await WriteSnapshotTableAsync([.. _snapshots, entry]).ConfigureAwait(false);

            if (snapshot.VmStateSize > 0)
            {
                // The VM state now lives in the snapshot; keeping it in the active image would only cost copies.
                long start = VmStateOffset;
                long end = start + _layout.AlignUp(snapshot.VmStateSize);
                for (long pos = start; pos < end;)
                {
                    long stop = Math.Min(end, pos + ToSliceEnd(pos));
                    if (SliceOffset(_l1, pos, out _) > 0)
                        await ChangeSliceAsync(pos, stop, ClusterChange.Deallocate).ConfigureAwait(false);
                    pos = stop;
                }
                await FlushMetadataLockedAsync().ConfigureAwait(false);
            }
            return ToInfo(entry);
        }
        finally
        {
            _lock.Release();
        }
    }

    private string NextSnapshotId()
    {
        long max = 0;
        foreach (var s in _snapshots)
        {
            if (long.TryParse(s.Id, NumberStyles.None, CultureInfo.InvariantCulture, out long n) && n > max)
                max = n;
        }
        return (max + 1).ToString(CultureInfo.InvariantCulture);
    }

    /// <inheritdoc />
    /// <remarks>
    /// The snapshot's tree gains a reference first, then its L1 entries replace the active ones on disk, then the old
    /// active tree loses its reference, and the COPIED flags of the new active tables are recomputed. The disk takes
    /// the snapshot's size.
    /// </remarks>
    public override async ValueTask ApplySnapshotAsync(string idOrName)
    {
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            ThrowIfCorrupt();
            var snapshot = FindSnapshot(idOrName, idOrName, either: true)
                ?? throw new BlockException(Errno.ENOENT, "Failed to load snapshot: No such file or directory");
            await FlushMetadataLockedAsync().ConfigureAwait(false);
            long diskSize = snapshot.DiskSize is { } d ? (long)d : _size;

            var snapshotL1 = await ReadSnapshotL1Async(snapshot).ConfigureAwait(false);
            await EnsureRefcountsCanGrowAsync(snapshotL1).ConfigureAwait(false);
            if (snapshotL1.Length > _l1.Length)
                await GrowL1Async(snapshotL1.Length).ConfigureAwait(false);

            await UpdateTreeRefcountsAsync(snapshotL1, (long)snapshot.L1TableOffset, active: false, addend: +1, DiscardReason.Snapshot).ConfigureAwait(false);
            await FlushMetadataLockedAsync().ConfigureAwait(false);

            var oldL1 = _l1.ToArray();
            var newL1 = new ulong[_l1.Length];
            Array.Copy(snapshotL1, newL1, snapshotL1.Length);
            await CheckOverlapAsync((long)_header.L1TableOffset, newL1.Length * 8L, Qcow2OverlapFlags.ActiveL1).ConfigureAwait(false);
            await _file.WriteAsync((long)_header.L1TableOffset, TableBytes(newL1)).ConfigureAwait(false);
            await _file.FlushAsync().ConfigureAwait(false);

            _l1 = newL1;
            _activeL2.Clear();
            foreach (ulong e in newL1)
            {
                if ((e & Qcow2Layout.OffsetMask) != 0)
                    _activeL2.Add((long)(e & Qcow2Layout.OffsetMask));
            }
            RefreshMetadataMap();

            await UpdateTreeRefcountsAsync(oldL1, -1, active: false, addend: -1, DiscardReason.Snapshot).ConfigureAwait(false);
            await UpdateTreeRefcountsAsync(_l1, (long)_header.L1TableOffset, active: true, addend: 0, DiscardReason.Snapshot).ConfigureAwait(false);
            await FlushMetadataLockedAsync().ConfigureAwait(false);

            if (diskSize != _size)
            {
                await WriteHeaderFieldAsync(24, (ulong)diskSize, 8).ConfigureAwait(false);
                _header.Size = (ulong)diskSize;
                _size = diskSize;
            }
            await LoadInactiveL2Async().ConfigureAwait(false);
            RefreshMetadataMap();
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <inheritdoc />
    /// <remarks>The snapshot leaves the table first (a new table, one header write); only then do its clusters lose their
    /// reference, and the active tables get their COPIED flags back where they are the only user.</remarks>
    public override async ValueTask DeleteSnapshotAsync(string? id, string? name)
    {
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            ThrowIfCorrupt();
            var snapshot = FindSnapshot(id, name, either: false)
                ?? throw new BlockException(Errno.ENOENT, "snapshot not found");
            await FlushMetadataLockedAsync().ConfigureAwait(false);
            var l1 = await ReadSnapshotL1Async(snapshot).ConfigureAwait(false);

            await WriteSnapshotTableAsync([.. _snapshots.Where(s => !ReferenceEquals(s, snapshot))]).ConfigureAwait(false);

            await UpdateTreeRefcountsAsync(l1, -1, active: false, addend: -1, DiscardReason.Snapshot).ConfigureAwait(false);
            if (snapshot.L1Size > 0)
            {
                long clusters = (snapshot.L1Size * 8L + _layout.ClusterSize - 1) / _layout.ClusterSize;
                await _refcounts.UpdateAsync((long)snapshot.L1TableOffset >> _layout.ClusterBits, clusters, -1, DiscardReason.Snapshot).ConfigureAwait(false);
            }
            await FlushMetadataLockedAsync().ConfigureAwait(false);
            await UpdateTreeRefcountsAsync(_l1, (long)_header.L1TableOffset, active: true, addend: 0, DiscardReason.Snapshot).ConfigureAwait(false);
            await FlushMetadataLockedAsync().ConfigureAwait(false);
            await LoadInactiveL2Async().ConfigureAwait(false);
            RefreshMetadataMap();
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <inheritdoc />
    public override async ValueTask LoadSnapshotAsync(string? id, string? name)
    {
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            var snapshot = FindSnapshot(id, name, either: id is null || name is null)
                ?? throw new BlockException(Errno.ENOENT, "Can't find snapshot");
            var l1 = await ReadSnapshotL1Async(snapshot).ConfigureAwait(false);
            // A read-only view: the snapshot's L1 replaces the active one in memory only. The disk keeps its size, as
            // in QEMU: past the snapshot's disk the image reads as unallocated, and what lies beyond this size is not seen.
            _l1 = l1;
            _activeL2.Clear();
            foreach (ulong e in l1)
            {
                if ((e & Qcow2Layout.OffsetMask) != 0)
                    _activeL2.Add((long)(e & Qcow2Layout.OffsetMask));
            }
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <inheritdoc />
    public override async ValueTask ReadVmStateAsync(long position, IoVector buffers)
    {
        await _file.DebugEventAsync(BlkdebugEvent.VmstateLoad).ConfigureAwait(false);
        await (_encryption != null && !IsSectorAligned(position, buffers.Length)
            ? ReadVmStateBouncedAsync(VmStateOffset + position, buffers)
            : ReadSlowAsync(VmStateOffset + position, buffers)).ConfigureAwait(false);
    }

    /// <inheritdoc />
    public override async ValueTask WriteVmStateAsync(long position, IoVector buffers)
    {
        await _file.DebugEventAsync(BlkdebugEvent.VmstateSave).ConfigureAwait(false);
        await (_encryption != null && !IsSectorAligned(position, buffers.Length)
            ? WriteVmStateBouncedAsync(VmStateOffset + position, buffers)
            : WriteSlowAsync(VmStateOffset + position, buffers)).ConfigureAwait(false);
    }

    /// <summary>
    /// The snapshot with <paramref name="id"/> and <paramref name="name"/> (both must match when both are given); with
    /// <paramref name="either"/>, an id match first and otherwise a name match.
    /// </summary>
    private Qcow2Snapshot? FindSnapshot(string? id, string? name, bool either)
    {
        if (either)
            return _snapshots.FirstOrDefault(s => s.Id == id) ?? _snapshots.FirstOrDefault(s => s.Name == name);
        return _snapshots.FirstOrDefault(s => (id is null || s.Id == id) && (name is null || s.Name == name));
    }

    private async ValueTask<ulong[]> ReadSnapshotL1Async(Qcow2Snapshot snapshot)
    {
        var l1 = await ReadTableAsync(_file, (long)snapshot.L1TableOffset, snapshot.L1Size, "snapshot L1 table", _file.Length).ConfigureAwait(false);
        for (int i = 0; i < l1.Length; i++)
            l1[i] &= ~Qcow2Layout.L1Reserved | Qcow2Layout.Copied;
        return l1;
    }

    private static byte[] TableBytes(ulong[] table)
    {
        var bytes = new byte[table.Length * 8L];
        for (int i = 0; i < table.Length; i++)
            BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan(i * 8), table[i]);
        return bytes;
    }

    /// <summary>
    /// Writes <paramref name="snapshots"/> as a new snapshot table, switches the header to it (count and offset in
    /// one write), and frees the old table.
    /// </summary>
    private async ValueTask WriteSnapshotTableAsync(List<Qcow2Snapshot> snapshots)
    {
        var bytes = Qcow2SnapshotTable.Serialize(snapshots);
        long offset = 0;
        if (bytes.Length > 0)
        {
            long clusters = (bytes.Length + _layout.ClusterSize - 1) / _layout.ClusterSize;
            offset = await _refcounts.AllocateAsync(clusters).ConfigureAwait(false);
            await CheckOverlapAsync(offset, bytes.Length, Qcow2OverlapFlags.None).ConfigureAwait(false);
            await _refcounts.Blocks.FlushAsync().ConfigureAwait(false);
            await _file.WriteAsync(offset, bytes).ConfigureAwait(false);
            await _file.FlushAsync().ConfigureAwait(false);
        }
        var header = new byte[12];
        BinaryPrimitives.WriteUInt32BigEndian(header, (uint)snapshots.Count);
        BinaryPrimitives.WriteUInt64BigEndian(header.AsSpan(4), (ulong)offset);
        await _file.WriteAsync(60, header).ConfigureAwait(false);
        await _file.FlushAsync().ConfigureAwait(false);

        long oldOffset = (long)_header.SnapshotsOffset;
        long oldLength = _snapshotTableLength;
        _header.NbSnapshots = (uint)snapshots.Count;
        _header.SnapshotsOffset = (ulong)offset;
        _snapshots = snapshots;
        _snapshotTableLength = bytes.Length;
        RefreshMetadataMap();
        if (oldOffset != 0 && oldLength > 0)
        {
            long clusters = (oldLength + (oldOffset & (_layout.ClusterSize - 1)) + _layout.ClusterSize - 1) / _layout.ClusterSize;
            await _refcounts.UpdateAsync(oldOffset >> _layout.ClusterBits, clusters, -1, DiscardReason.Snapshot).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Adds <paramref name="addend"/> (+1, -1 or 0) to the refcount of every L2 table and cluster an L1 table reaches,
    /// and sets the COPIED flags of its L1 and L2 entries from the resulting counts. An L1 table at
    /// <paramref name="l1Offset"/> is rewritten if its flags changed (-1: a table no longer on disk).
    /// </summary>
    private async ValueTask UpdateTreeRefcountsAsync(ulong[] l1, long l1Offset, bool active, int addend, DiscardReason reason)
    {
        int cs = _layout.ClusterSize;
        bool l1Changed = false;
        for (int i = 0; i < l1.Length; i++)
        {
            long l2 = (long)(l1[i] & Qcow2Layout.OffsetMask);
            if (l2 == 0)
                continue;
            if ((l2 & (cs - 1)) != 0)
                throw await SignalCorruptionAsync($"L2 table offset {l2:x} unaligned (L1 index: {i:x})", l2, null).ConfigureAwait(false);
            for (int s = 0; s < cs / _sliceBytes; s++)
            {
                var slice = await _l2Cache.GetAsync(l2 + (long)s * _sliceBytes).ConfigureAwait(false);
                bool changed = false;
                for (int j = 0; j < _sliceEntries; j++)
                {
                    ulong entry = EntryAt(slice.Data, j);
                    if ((entry & Qcow2Layout.CompressedFlag) != 0)
                    {
                        if (addend != 0)
                        {
                            if (addend < 0)
                                await FreeClusterAsync(entry, reason).ConfigureAwait(false);
                            else
                                await AddCompressedReferenceAsync(entry).ConfigureAwait(false);
                        }
                        continue;
                    }
                    if (!HasHost(entry))
                        continue;
                    long host = (long)(entry & Qcow2Layout.OffsetMask);
                    ulong refcount = 1;
                    if (!_hasDataFile)
                    {
                        if ((host & (cs - 1)) != 0)
                            continue;
                        if (addend != 0)
                        {
                            if (addend > 0)
                                await _l2Cache.SetDependency(_refcounts.Blocks).ConfigureAwait(false);
                            await _refcounts.UpdateAsync(host >> _layout.ClusterBits, 1, addend, reason).ConfigureAwait(false);
                        }
                        refcount = await _refcounts.GetAsync(host >> _layout.ClusterBits).ConfigureAwait(false);
                    }
                    ulong updated = refcount == 1 ? entry | Qcow2Layout.Copied : entry & ~Qcow2Layout.Copied;
                    if (updated != entry)
                    {
                        BinaryPrimitives.WriteUInt64BigEndian(slice.Data.AsSpan(j * _layout.L2EntrySize), updated);
                        changed = true;
                    }
                }
                if (changed)
                    MetadataCache.MarkDirty(slice);
            }
            if (addend != 0)
            {
                if (addend < 0)
                    await _refcounts.Blocks.SetDependency(_l2Cache).ConfigureAwait(false);
                await _refcounts.UpdateAsync(l2 >> _layout.ClusterBits, 1, addend, reason).ConfigureAwait(false);
            }
            ulong l2Refcount = await _refcounts.GetAsync(l2 >> _layout.ClusterBits).ConfigureAwait(false);
            if (l2Refcount == 0)
            {
                // The table is free now: its cached slices must never be written back over whatever takes its place.
                for (int s = 0; s < cs / _sliceBytes; s++)
                    _l2Cache.Discard(l2 + (long)s * _sliceBytes);
            }
            ulong l1Entry = l2Refcount == 1 ? l1[i] | Qcow2Layout.Copied : l1[i] & ~Qcow2Layout.Copied;
            if (l1Entry != l1[i])
            {
                l1[i] = l1Entry;
                l1Changed = true;
            }
        }
        if (l1Changed && l1Offset > 0)
        {
            // Both tables are flushed first, so the L1 entries never claim more than the counts on disk say.
            await FlushMetadataLockedAsync().ConfigureAwait(false);
            await CheckOverlapAsync(l1Offset, l1.Length * 8L, active ? Qcow2OverlapFlags.ActiveL1 : Qcow2OverlapFlags.InactiveL1).ConfigureAwait(false);
            await _file.WriteAsync(l1Offset, TableBytes(l1)).ConfigureAwait(false);
            await _file.FlushAsync().ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Fails with EINVAL (QEMU's errno for it), before anything changes, if one more reference to everything <paramref name="l1"/> reaches
    /// would overflow a refcount (narrow refcounts, or host clusters shared by many compressed clusters).
    /// </summary>
    private async ValueTask EnsureRefcountsCanGrowAsync(ulong[] l1)
    {
        var added = new Dictionary<long, long>();
        void Add(long cluster) => added[cluster] = added.GetValueOrDefault(cluster) + 1;
        int cs = _layout.ClusterSize;
        foreach (ulong l1Entry in l1)
        {
            long l2 = (long)(l1Entry & Qcow2Layout.OffsetMask);
            if (l2 == 0 || (l2 & (cs - 1)) != 0)
                continue;
            Add(l2 >> _layout.ClusterBits);
            for (int s = 0; s < cs / _sliceBytes; s++)
            {
                var slice = await _l2Cache.GetAsync(l2 + (long)s * _sliceBytes).ConfigureAwait(false);
                for (int j = 0; j < _sliceEntries; j++)
                {
                    ulong entry = EntryAt(slice.Data, j);
                    if ((entry & Qcow2Layout.CompressedFlag) != 0)
                    {
                        var (offset, _) = _layout.CompressedExtent(entry);
                        long start = offset & ~511L;
                        long end = start + (((long)((entry >> _layout.CompressedSizeShift) & _layout.CompressedSizeMask) + 1) * 512);
                        for (long c = start >> _layout.ClusterBits; c <= (end - 1) >> _layout.ClusterBits; c++)
                            Add(c);
                    }
                    else if (!_hasDataFile && (entry & Qcow2Layout.OffsetMask) is var host && host != 0)
                    {
                        Add((long)host >> _layout.ClusterBits);
                    }
                }
            }
        }
        foreach (var (cluster, count) in added)
        {
            ulong current = await _refcounts.GetAsync(cluster).ConfigureAwait(false);
            if ((long)current + count > _layout.MaxRefcount)
                throw new BlockException(Errno.EINVAL, "Invalid argument");
        }
    }

    /// <summary>One more user of the host clusters a compressed cluster's data touches.</summary>
    private async ValueTask AddCompressedReferenceAsync(ulong entry)
    {
        var (offset, _) = _layout.CompressedExtent(entry);
        long start = offset & ~511L;
        long end = start + (((long)((entry >> _layout.CompressedSizeShift) & _layout.CompressedSizeMask) + 1) * 512);
        long first = start >> _layout.ClusterBits;
        long last = (end - 1) >> _layout.ClusterBits;
        await _l2Cache.SetDependency(_refcounts.Blocks).ConfigureAwait(false);
        await _refcounts.UpdateAsync(first, last - first + 1, +1).ConfigureAwait(false);
    }
}
