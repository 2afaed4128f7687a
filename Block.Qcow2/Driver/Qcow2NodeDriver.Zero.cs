using Block.Graph;
using Block.Qcow2.Format;
using Block.Qcow2.Metadata;

namespace Block.Qcow2.Driver;

internal sealed partial class Qcow2NodeDriver
{
    /// <inheritdoc />
    /// <remarks>Version 3 marks (sub)clusters as zero in L2; with <see cref="RequestFlags.MayUnmap"/> (or for shared
    /// and compressed clusters) the host clusters are freed too. Version 2 has no zero flag: without a backing file
    /// the clusters are deallocated (they then read as zeroes), otherwise the request path writes zero buffers.
    /// A request that covers only part of a (sub)cluster changes the whole one if the rest already reads as zeroes,
    /// as QEMU does; otherwise zero buffers are written there (or, with <see cref="RequestFlags.NoFallback"/>, it
    /// fails).</remarks>
    public override async ValueTask WriteZeroesAsync(long offset, long length, RequestFlags flags)
    {
        if (_encryption is { Cipher: null })
            throw LockedError();
        await ZeroRawDataFileAsync(offset, length, flags & RequestFlags.MayUnmap).ConfigureAwait(false);
        ClusterChange change;
        if (_header.Version < 3)
        {
            if (Node.Backing != null)
                throw new BlockException(Errno.ENOTSUP, "qcow2 v2 images cannot record zero clusters");
            change = ClusterChange.Deallocate;
        }
        else
        {
            change = (flags & RequestFlags.MayUnmap) != 0 ? ClusterChange.ZeroUnmap : ClusterChange.Zero;
        }

        // Head and tail pieces that cover part of a (sub)cluster are handled alone, so that only they fall back.
        long unit = _layout.SubclusterSize;
        long end = offset + length;
        long headEnd = Math.Min(end, (offset + unit - 1) / unit * unit);
        long tailStart = end >= _size ? end : Math.Max(headEnd, end / unit * unit);
        if (offset < headEnd)
            await ZeroPartialAsync(offset, headEnd - offset, change, flags).ConfigureAwait(false);
        if (headEnd < tailStart)
            await ChangeClustersAsync(headEnd, tailStart - headEnd, change).ConfigureAwait(false);
        if (tailStart < end)
            await ZeroPartialAsync(tailStart, end - tailStart, change, flags).ConfigureAwait(false);
    }

    private async ValueTask ZeroPartialAsync(long offset, long length, ClusterChange change, RequestFlags flags)
    {
        try
        {
            await ChangeClustersAsync(offset, length, change).ConfigureAwait(false);
        }
        catch (BlockException e) when (e.Errno == Errno.ENOTSUP && (flags & RequestFlags.NoFallback) == 0)
        {
            await WriteSlowAsync(offset, new Io.IoVector(new byte[length])).ConfigureAwait(false);
        }
    }

    /// <inheritdoc />
    /// <remarks>Discarded clusters read as zeroes on version 3 (the zero flag, so a backing file does not show through),
    /// and fall through to the backing file on version 2. Their host clusters are freed and, with
    /// <c>pass-discard-request</c>, punched out of the file.</remarks>
    public override async ValueTask DiscardAsync(long offset, long length)
    {
        await ZeroRawDataFileAsync(offset, length, RequestFlags.MayUnmap).ConfigureAwait(false);
        await ChangeClustersAsync(offset, length, ClusterChange.Discard).ConfigureAwait(false);
    }

    /// <summary>
    /// With <c>data_file_raw</c> the data file alone must stay the disk, so a range that is about to read as zeroes
    /// is zeroed there first, as QEMU does (L2 entries alone would leave the old bytes in the raw file).
    /// </summary>
    private async ValueTask ZeroRawDataFileAsync(long offset, long length, RequestFlags flags)
    {
        if (!_hasDataFile || !IsDataFileRaw)
            return;
        long bytes = Math.Min(length, _data.Length - offset);
        if (bytes > 0)
            await _data.WriteZeroesAsync(offset, bytes, flags).ConfigureAwait(false);
    }

    private enum ClusterChange
    {
        /// <summary>Read as zeroes, keep host clusters with refcount 1 (preallocated zero).</summary>
        Zero,
        /// <summary>Read as zeroes, free host clusters.</summary>
        ZeroUnmap,
        /// <summary>QEMU's discard: zero flag where something could show through, free host clusters.</summary>
        Discard,
        /// <summary>Entry 0: unallocated (falls through to the backing file). Used by v2 zeroing.</summary>
        Deallocate,
        /// <summary>Entry 0, and the host clusters always discarded in the file: the area cut off by shrinking.</summary>
        Cut,
    }

    private async ValueTask ChangeClustersAsync(long offset, long length, ClusterChange change)
    {
        long end = offset + length;
        while (offset < end)
        {
            await _lock.WaitAsync().ConfigureAwait(false);
            try
            {
                ThrowIfCorrupt();
                long stepEnd = Math.Min(end, offset + ToSliceEnd(offset));
                var blocker = FindInFlight(_layout.AlignDown(offset), _layout.AlignUp(stepEnd));
                if (blocker != null)
                {
                    var done = blocker.WhenDone();
                    _lock.Release();
                    try
                    {
                        await done.ConfigureAwait(false);
                    }
                    finally
                    {
                        await _lock.WaitAsync().ConfigureAwait(false);
                    }
                    continue;
                }
                await ChangeSliceAsync(offset, stepEnd, change).ConfigureAwait(false);
                offset = stepEnd;
            }
            finally
            {
                _lock.Release();
            }
        }
    }

    /// <summary>Applies <paramref name="change"/> to the clusters of <c>[offset, end)</c>, all in one L2 slice. Under the lock.</summary>
    private async ValueTask ChangeSliceAsync(long offset, long end, ClusterChange change)
    {
        int cs = _layout.ClusterSize;
        bool hasBacking = Node.Backing != null;
        long slice = SliceOffset(_l1, offset, out int index);
        if (slice == 0 && change == ClusterChange.Discard && (!hasBacking || _header.Version < 3))
        {
            // No L2 table: a discard changes nothing that could show. (Deallocating zeroes on version 2 and cutting
            // off the end of the image by shrinking allocate the table, as QEMU does.)
            return;
        }
        var (entry, i0) = await GetSliceForWriteAsync(offset).ConfigureAwait(false);
        var data = entry.Data;
        // Every entry is planned before any changes, so that a refusal (part of a cluster that cannot be changed in
        // place) leaves the slice as it was: no entry half-changed, no cluster unfreed.
        var plans = new List<(int Index, ulong Old, ulong NewEntry, ulong NewBitmap, bool Free, DiscardReason Reason)>();
        for (long pos = offset; pos < end; pos = _layout.AlignDown(pos) + cs)
        {
            int i = i0 + (int)((_layout.AlignDown(pos) - _layout.AlignDown(offset)) >> _layout.ClusterBits);
            long clusterEnd = _layout.AlignDown(pos) + cs;
            long to = Math.Min(end, clusterEnd);
            bool whole = pos == _layout.AlignDown(pos) && (to == clusterEnd || to >= _size);
            ulong old = EntryAt(data, i);
            ulong oldBitmap = BitmapAt(data, i);
            if (TypeOf(old, oldBitmap, SubclusterOf(pos)) == SubclusterType.Invalid)
                throw await SignalCorruptionAsync(InvalidEntryMessage(old, pos), (long)(old & Qcow2Layout.OffsetMask), null).ConfigureAwait(false);
            bool compressed = (old & Qcow2Layout.CompressedFlag) != 0;
            bool host = !compressed && HasHost(old);
            bool shared = host && (old & Qcow2Layout.Copied) == 0;
            bool allocated = compressed || host || HasAllocatedType(old, oldBitmap);

            ulong newEntry, newBitmap;
            bool free;
            DiscardReason reason = DiscardReason.Request;
            if (!whole && change != ClusterChange.Discard && !IsUnitAligned(pos, to))
            {
                // Part of a (sub)cluster: the whole one may change only if the rest of it reads as zeroes already.
                long unitStart = pos & ~(long)(_layout.SubclusterSize - 1);
                long unitEnd = Math.Min(Math.Min((to + _layout.SubclusterSize - 1) & ~(long)(_layout.SubclusterSize - 1), clusterEnd), _size);
                if (!await RestReadsAsZeroAsync(TypeOf(old, oldBitmap, SubclusterOf(pos)), unitStart, pos, to, unitEnd).ConfigureAwait(false))
                    throw new BlockException(Errno.ENOTSUP, "Cannot change part of a cluster in place");
                pos = unitStart;
                to = unitEnd;
                whole = pos == _layout.AlignDown(pos) && (to == clusterEnd || to >= _size);
            }
            if (!whole)
            {
                // Part of a cluster: only extended L2 can say that (for its subclusters), and not for compressed data.
                if (!_layout.ExtendedL2 || compressed)
                    throw new BlockException(Errno.ENOTSUP, "Cannot change part of a cluster in place");
                ulong touched = SubclusterMask(SubclusterOf(pos), SubclusterOf(to - 1));
                newEntry = old;
                newBitmap = change is ClusterChange.Deallocate or ClusterChange.Cut
                    ? oldBitmap & ~touched & ~(touched << 32)
                    : (oldBitmap & ~touched) | (touched << 32);
                free = false;
            }
            else
            {
                switch (change)
                {
                    case ClusterChange.Zero:
                        free = compressed || shared;
                        newEntry = free || !host ? ZeroEntry() : (old & (Qcow2Layout.OffsetMask | Qcow2Layout.Copied)) | ZeroEntry();
                        newBitmap = _layout.ExtendedL2 ? 0xffffffff00000000UL : 0;
                        break;
                    case ClusterChange.ZeroUnmap:
                        free = compressed || host;
                        newEntry = ZeroEntry();
                        newBitmap = _layout.ExtendedL2 ? 0xffffffff00000000UL : 0;
                        break;
                    case ClusterChange.Discard:
                        free = compressed || host;
                        if (hasBacking || allocated)
                        {
                            newEntry = _header.Version >= 3 ? ZeroEntry() : 0;
                            newBitmap = _layout.ExtendedL2 ? 0xffffffff00000000UL : 0;
                        }
                        else
                        {
                            newEntry = old;
                            newBitmap = oldBitmap;
                        }
                        break;
                    default:
                        free = compressed || host;
                        newEntry = 0;
                        newBitmap = 0;
                        reason = change == ClusterChange.Cut ? DiscardReason.Always : DiscardReason.Request;
                        break;
                }
                if (_hasDataFile && free)
                {
                    // Clusters of an external data file are not refcounted; keep the mapping, mark it zero.
                    free = false;
                    if (newEntry is 0 || newEntry == ZeroEntry())
                        newEntry = change is ClusterChange.Deallocate or ClusterChange.Cut ? 0 : (old & (Qcow2Layout.OffsetMask | Qcow2Layout.Copied)) | ZeroEntry();
                }
            }
            if (newEntry != old || newBitmap != oldBitmap)
                plans.Add((i, old, newEntry, newBitmap, free, reason));
        }
        if (plans.Count == 0)
            return;
        foreach (var p in plans)
            SetEntry(data, p.Index, p.NewEntry, p.NewBitmap);
        MetadataCache.MarkDirty(entry);
        if (plans.Exists(p => p.Free))
        {
            await _refcounts.Blocks.SetDependency(_l2Cache).ConfigureAwait(false);
            foreach (var p in plans)
            {
                if (p.Free)
                    await FreeClusterAsync(p.Old, p.Reason).ConfigureAwait(false);
            }
        }
    }

    /// <summary>Whether <c>[pos, to)</c> starts and ends on (sub)cluster boundaries, or ends at the end of the image.</summary>
    private bool IsUnitAligned(long pos, long to)
    {
        long mask = _layout.SubclusterSize - 1;
        return (pos & mask) == 0 && ((to & mask) == 0 || to >= _size);
    }

    /// <summary>
    /// Whether the parts of the (sub)cluster <c>[unitStart, unitEnd)</c> outside <c>[pos, to)</c> read as zeroes: the
    /// (sub)cluster is a zero one, or unallocated with no backing data there.
    /// </summary>
    private async ValueTask<bool> RestReadsAsZeroAsync(SubclusterType type, long unitStart, long pos, long to, long unitEnd)
    {
        switch (type)
        {
            case SubclusterType.ZeroPlain or SubclusterType.ZeroAlloc:
                return true;
            case SubclusterType.UnallocatedPlain or SubclusterType.UnallocatedAlloc:
                if (Node.Backing?.Node is not { } backing)
                    return true;
                return await BackingReadsAsZeroAsync(backing, unitStart, pos).ConfigureAwait(false)
                    && await BackingReadsAsZeroAsync(backing, to, unitEnd).ConfigureAwait(false);
            default:
                return false;
        }
    }

    private static async ValueTask<bool> BackingReadsAsZeroAsync(BlockNode backing, long offset, long end)
    {
        end = Math.Min(end, backing.Length);
        while (offset < end)
        {
            var (status, _) = await backing.GetBlockStatusAboveAsync(offset, end - offset).ConfigureAwait(false);
            if (!status.Has(BlockStatusFlags.Zero) || status.Bytes <= 0)
                return false;
            offset += status.Bytes;
        }
        return true;
    }

    /// <summary>The entry word of a plain zero cluster: the zero flag, or 0 with extended L2 (the bitmap says zero).</summary>
    private ulong ZeroEntry() => _layout.ExtendedL2 ? 0 : Qcow2Layout.ZeroFlag;

    private bool HasAllocatedType(ulong entry, ulong bitmap)
    {
        if (!_layout.ExtendedL2)
            return (entry & Qcow2Layout.ZeroFlag) != 0;
        return (bitmap >> 32) != 0;
    }
}
