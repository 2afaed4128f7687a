using System.Globalization;
using Block.Graph;
using Block.Qcow2.Format;
using Block.Qcow2.Metadata;

namespace Block.Qcow2.Driver;

internal sealed partial class Qcow2NodeDriver
{
    /// <summary>
    /// compat=0.10 → 1.1: snapshots get the extra data version 3 requires (VM state size and disk size), then the header
    /// is rewritten as version 3. Reports (0, 2), (1, 2), (2, 2).
    /// </summary>
    private async ValueTask UpgradeLockedAsync(Action<long, long> status)
    {
        status(0, 2);
        if (_snapshots.Any(s => s.ExtraData.Length < 16))
        {
            var updated = _snapshots.Select(s => s.ExtraData.Length >= 16 ? s : new Qcow2Snapshot
            {
                L1TableOffset = s.L1TableOffset,
                L1Size = s.L1Size,
                Id = s.Id,
                Name = s.Name,
                DateSeconds = s.DateSeconds,
                DateNanoseconds = s.DateNanoseconds,
                VmClockNanoseconds = s.VmClockNanoseconds,
                VmStateSize = s.VmStateSize,
                ExtraData = Qcow2SnapshotTable.NewExtraData(s.VmStateSizeLarge, (ulong)_size, -1),
            }).ToList();
            await FlushMetadataLockedAsync().ConfigureAwait(false);
            await WriteSnapshotTableAsync(updated).ConfigureAwait(false);
        }
        status(1, 2);
        _header.Version = 3;
        _header.HeaderLength = Qcow2Header.V3Length;
        try
        {
            await WriteHeaderAsync().ConfigureAwait(false);
        }
        catch
        {
            _header.Version = 2;
            _header.HeaderLength = Qcow2Header.V2Length;
            throw;
        }
        status(2, 2);
    }

    /// <summary>
    /// lazy_refcounts=on sets the compatible bit; off first makes the image clean (refcounts on disk, dirty bit cleared),
    /// then clears it.
    /// </summary>
    private async ValueTask SetLazyRefcountsLockedAsync(bool on, int newVersion)
    {
        if (on)
        {
            if (newVersion < 3)
                throw new BlockException(Errno.EINVAL, "Lazy refcounts only supported with compatibility level 1.1 and above (use compat=1.1 or greater)");
            _header.Compatible |= CompatibleFeatures.LazyRefcounts;
        }
        else
        {
            await MarkCleanLockedAsync().ConfigureAwait(false);
            _header.Compatible &= ~CompatibleFeatures.LazyRefcounts;
        }
        await WriteHeaderAsync().ConfigureAwait(false);
        _lazyRefcounts = on;
    }

    /// <summary>Writes the refcounts that lazy refcounts postponed and clears the dirty bit.</summary>
    private async ValueTask MarkCleanLockedAsync()
    {
        if (!_dirtyOnDisk)
            return;
        await FlushMetadataLockedAsync().ConfigureAwait(false);
        _header.Incompatible &= ~IncompatibleFeatures.Dirty;
        await WriteHeaderAsync().ConfigureAwait(false);
        _dirtyOnDisk = false;
    }

    /// <summary>
    /// compat=1.1 → 0.10: refused for what version 2 cannot express (other refcount widths, a data file, incompatible
    /// features, zstd-compressed clusters); otherwise the feature bits go, zero clusters become real zeroes, and the
    /// header is rewritten as version 2 (72 bytes, no feature table).
    /// </summary>
    private async ValueTask DowngradeLockedAsync(Action<long, long> status)
    {
        if (_layout.RefcountOrder != 4)
            throw new BlockException(Errno.ENOTSUP, "compat=0.10 requires refcount_bits=16");
        if (_hasDataFile)
            throw new BlockException(Errno.ENOTSUP, "Cannot downgrade an image with a data file");
        await MarkCleanLockedAsync().ConfigureAwait(false);
        var incompatible = _header.Incompatible & ~IncompatibleFeatures.CompressionType;
        if (incompatible != 0)
            throw new BlockException(Errno.ENOTSUP, $"Cannot downgrade an image with incompatible features 0x{(ulong)incompatible:x} set");

        // Version 2 has neither field; lazy refcounts end here (the image is clean).
        _header.Compatible = 0;
        _header.Autoclear = 0;
        _lazyRefcounts = false;
        await ExpandZeroClustersLockedAsync(status).ConfigureAwait(false);
        if ((_header.Incompatible & IncompatibleFeatures.CompressionType) != 0)
        {
            // Version 2 readers inflate every compressed cluster with zlib.
            if (await HasCompressedClustersAsync().ConfigureAwait(false))
                throw new BlockException(Errno.ENOTSUP, "Cannot downgrade an image with zstd compression type and existing compressed clusters");
            _header.CompressionType = 0;
            _header.Incompatible &= ~IncompatibleFeatures.CompressionType;
        }
        // No L2 entry with a zero flag may reach a version 2 header: the tables go first.
        await FlushMetadataLockedAsync().ConfigureAwait(false);
        _header.Version = 2;
        _header.HeaderLength = Qcow2Header.V2Length;
        try
        {
            await WriteHeaderAsync().ConfigureAwait(false);
        }
        catch
        {
            _header.Version = 3;
            _header.HeaderLength = Qcow2Header.V3Length;
            throw;
        }
    }

    /// <summary>
    /// Rewrites every zero cluster of the active and the snapshots' L2 tables (in that order) for version 2, which has
    /// no zero flag: a preallocated zero cluster keeps its host cluster, zeroed; an unallocated one becomes unallocated
    /// without a backing file, and otherwise gets a new zeroed cluster (counted once per user of a shared L2 table).
    /// Reports (L1 entries visited, L1 entries of all tables).
    /// </summary>
    /// <remarks>An entry gets COPIED when its L2 table has one user, as QEMU sets it, except that an active entry whose
    /// host cluster a snapshot shares stays without it (QEMU 7.2 sets it there too, which <c>qemu-img check</c> then
    /// reports as an error).</remarks>
    private async ValueTask ExpandZeroClustersLockedAsync(Action<long, long> status)
    {
        var tables = new List<(ulong[] L1, bool Active)> { (_l1, true) };
        foreach (var snapshot in _snapshots)
            tables.Add((await ReadSnapshotL1Async(snapshot).ConfigureAwait(false), false));
        long total = tables.Sum(t => (long)t.L1.Length);
        long visited = 0;
        bool hasBacking = Node.Backing != null;
        int cs = _layout.ClusterSize;
        foreach (var (l1, active) in tables)
        {
            for (int i = 0; i < l1.Length; i++)
            {
                long l2 = (long)(l1[i] & Qcow2Layout.OffsetMask);
                if (l2 != 0)
                {
                    if ((l2 & (cs - 1)) != 0)
                        throw await SignalCorruptionAsync($"L2 table offset {CHex(l2)} unaligned (L1 index: {CHex(i)})", l2, null).ConfigureAwait(false);
                    ulong l2Refcount = await _refcounts.GetAsync(l2 >> _layout.ClusterBits).ConfigureAwait(false);
                    for (int s = 0; s < cs / _sliceBytes; s++)
                        await ExpandZeroClustersInSliceAsync(l2 + (long)s * _sliceBytes, l2Refcount, active, hasBacking).ConfigureAwait(false);
                }
                status(++visited, total);
            }
        }
    }

    private async ValueTask ExpandZeroClustersInSliceAsync(long sliceOffset, ulong l2Refcount, bool active, bool hasBacking)
    {
        int cs = _layout.ClusterSize;
        var slice = await _l2Cache.GetAsync(sliceOffset).ConfigureAwait(false);
        bool changed = false, allocated = false;
        for (int j = 0; j < _sliceEntries; j++)
        {
            ulong entry = EntryAt(slice.Data, j);
            if ((entry & Qcow2Layout.CompressedFlag) != 0 || (entry & Qcow2Layout.ZeroFlag) == 0)
                continue;
            long host = (long)(entry & Qcow2Layout.OffsetMask);
            bool fresh = host == 0;
            if (fresh)
            {
                if (!hasBacking)
                {
                    // Nothing shows through: an unallocated cluster reads as zeroes.
                    SetEntry(slice.Data, j, 0, 0);
                    changed = true;
                    continue;
                }
                host = await _refcounts.AllocateAsync(1).ConfigureAwait(false);
                if (l2Refcount > 1)
                    await _refcounts.UpdateAsync(host >> _layout.ClusterBits, 1, (long)l2Refcount - 1).ConfigureAwait(false);
                allocated = true;
            }
            if ((host & (cs - 1)) != 0)
            {
                throw await SignalCorruptionAsync($"Cluster allocation offset {CHex(host)} unaligned (L2 offset: {CHex(sliceOffset)}, L2 index: {CHex(j)})",
                    host, cs).ConfigureAwait(false);
            }
            await CheckOverlapAsync(host, cs, Qcow2OverlapFlags.None).ConfigureAwait(false);
            await _file.WriteZeroesAsync(host, cs, RequestFlags.None).ConfigureAwait(false);
            bool copied = l2Refcount == 1
                && (fresh || !active || await _refcounts.GetAsync(host >> _layout.ClusterBits).ConfigureAwait(false) == 1);
            SetEntry(slice.Data, j, (ulong)host | (copied ? Qcow2Layout.Copied : 0), 0);
            changed = true;
        }
        if (!changed)
            return;
        // The zeroes reach the disk before the entries that point at them, and new refcounts before both.
        _l2Cache.SetDependsOnFlush();
        if (allocated)
            await _l2Cache.SetDependency(_refcounts.Blocks).ConfigureAwait(false);
        MetadataCache.MarkDirty(slice);
    }

    /// <summary>True if an L2 table of the active image or of a snapshot holds a compressed cluster.</summary>
    private async ValueTask<bool> HasCompressedClustersAsync()
    {
        var tables = new List<ulong[]> { _l1 };
        foreach (var snapshot in _snapshots)
            tables.Add(await ReadSnapshotL1Async(snapshot).ConfigureAwait(false));
        int cs = _layout.ClusterSize;
        foreach (var l1 in tables)
        {
            foreach (ulong l1Entry in l1)
            {
                long l2 = (long)(l1Entry & Qcow2Layout.OffsetMask);
                if (l2 == 0 || (l2 & (cs - 1)) != 0)
                    continue;
                for (int s = 0; s < cs / _sliceBytes; s++)
                {
                    var slice = await _l2Cache.GetAsync(l2 + (long)s * _sliceBytes).ConfigureAwait(false);
                    for (int j = 0; j < _sliceEntries; j++)
                    {
                        if ((EntryAt(slice.Data, j) & Qcow2Layout.CompressedFlag) != 0)
                            return true;
                    }
                }
            }
        }
        return false;
    }

    /// <summary>C's <c>%#x</c>: <c>0x</c> and lowercase hex digits, but a bare <c>0</c> for zero.</summary>
    private static string CHex(long value) => value == 0 ? "0" : "0x" + value.ToString("x", CultureInfo.InvariantCulture);
}
