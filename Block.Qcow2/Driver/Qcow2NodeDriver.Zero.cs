using Block.Graph;
using Block.Qcow2.Format;
using Block.Qcow2.Metadata;

namespace Block.Qcow2.Driver;

internal sealed partial class Qcow2NodeDriver
{
    /// <inheritdoc />
    /// <remarks>Version 3 marks (sub)clusters as zero in L2; with <see cref="RequestFlags.MayUnmap"/> (or for shared
    /// and compressed clusters) the host clusters are freed too. Version 2 has no zero flag: without a backing file
    /// the clusters are deallocated (they then read as zeroes), otherwise the request path writes zero buffers.</remarks>
    public override async ValueTask WriteZeroesAsync(long offset, long length, RequestFlags flags)
    {
        await ZeroRawDataFileAsync(offset, length, flags & RequestFlags.MayUnmap).ConfigureAwait(false);
        if (_header.Version < 3)
        {
            if (Node.Backing != null)
                throw new BlockException(Errno.ENOTSUP, "qcow2 v2 images cannot record zero clusters");
            await ChangeClustersAsync(offset, length, ClusterChange.Deallocate).ConfigureAwait(false);
            return;
        }
        bool unmap = (flags & RequestFlags.MayUnmap) != 0;
        await ChangeClustersAsync(offset, length, unmap ? ClusterChange.ZeroUnmap : ClusterChange.Zero).ConfigureAwait(false);
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
        /// <summary>Entry 0: unallocated (falls through to the backing file). Used by v2 zeroing and shrinking.</summary>
        Deallocate,
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
                    _lock.Release();
                    try
                    {
                        await blocker.Done.Task.ConfigureAwait(false);
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
        if (slice == 0 && (change == ClusterChange.Deallocate || (change == ClusterChange.Discard && (!hasBacking || _header.Version < 3))))
        {
            // No L2 table: nothing to deallocate, and a discard changes nothing that could show.
            return;
        }
        if (_layout.ExtendedL2 && slice > 0)
        {
            // Refuse before changing anything: a partial compressed cluster cannot be described by subcluster bits.
            var cached = await _l2Cache.GetAsync(slice).ConfigureAwait(false);
            int last = index + (int)((_layout.AlignDown(end - 1) - _layout.AlignDown(offset)) >> _layout.ClusterBits);
            bool partialHead = _layout.OffsetInCluster(offset) != 0;
            bool partialTail = _layout.OffsetInCluster(end) != 0 && end < _size;
            if ((partialHead && (EntryAt(cached.Data, index) & Qcow2Layout.CompressedFlag) != 0)
                || (partialTail && (EntryAt(cached.Data, last) & Qcow2Layout.CompressedFlag) != 0))
            {
                throw new BlockException(Errno.ENOTSUP, "Cannot change part of a compressed cluster in place");
            }
        }
        var (entry, i0) = await GetSliceForWriteAsync(offset).ConfigureAwait(false);
        var data = entry.Data;
        // Refuse before changing anything, so that no entry is left half-changed and no cluster unfreed: part of a
        // cluster can be changed only through the subcluster bitmap of extended L2, and not in a compressed cluster.
        for (long pos = offset; pos < end; pos = _layout.AlignDown(pos) + cs)
        {
            int i = i0 + (int)((_layout.AlignDown(pos) - _layout.AlignDown(offset)) >> _layout.ClusterBits);
            if (!IsWholeCluster(pos, end) && (!_layout.ExtendedL2 || (EntryAt(data, i) & Qcow2Layout.CompressedFlag) != 0))
                throw new BlockException(Errno.ENOTSUP, "Cannot change part of a cluster in place");
        }
        var freed = new List<(ulong Entry, DiscardReason Reason)>();
        bool changed = false;
        for (long pos = offset; pos < end; pos = _layout.AlignDown(pos) + cs)
        {
            int i = i0 + (int)((_layout.AlignDown(pos) - _layout.AlignDown(offset)) >> _layout.ClusterBits);
            long to = Math.Min(end, _layout.AlignDown(pos) + cs);
            bool whole = IsWholeCluster(pos, end);
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
            if (!whole)
            {
                // Part of a cluster (extended L2, not compressed: checked above): change its subclusters.
                ulong touched = SubclusterMask(SubclusterOf(pos), SubclusterOf(to - 1));
                newEntry = old;
                newBitmap = change == ClusterChange.Deallocate
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
                        reason = DiscardReason.Other;
                        break;
                }
                if (_hasDataFile && free)
                {
                    // Clusters of an external data file are not refcounted; keep the mapping, mark it zero.
                    free = false;
                    if (newEntry is 0 || newEntry == ZeroEntry())
                        newEntry = change == ClusterChange.Deallocate ? 0 : (old & (Qcow2Layout.OffsetMask | Qcow2Layout.Copied)) | ZeroEntry();
                }
            }
            if (newEntry == old && newBitmap == oldBitmap)
                continue;
            SetEntry(data, i, newEntry, newBitmap);
            changed = true;
            if (free)
                freed.Add((old, reason));
        }
        if (!changed)
            return;
        MetadataCache.MarkDirty(entry);
        if (freed.Count > 0)
        {
            await _refcounts.Blocks.SetDependency(_l2Cache).ConfigureAwait(false);
            foreach (var (old, reason) in freed)
                await FreeClusterAsync(old, reason).ConfigureAwait(false);
        }
    }

    /// <summary>True if <c>[pos, end)</c> covers the whole cluster holding <paramref name="pos"/> (or all of it up to the disk's end).</summary>
    private bool IsWholeCluster(long pos, long end)
    {
        long clusterEnd = _layout.AlignDown(pos) + _layout.ClusterSize;
        long to = Math.Min(end, clusterEnd);
        return pos == _layout.AlignDown(pos) && (to == clusterEnd || to >= _size);
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
