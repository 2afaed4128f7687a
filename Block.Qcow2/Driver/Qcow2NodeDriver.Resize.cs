using Block.Drivers.Blkdebug;
using System.Buffers.Binary;
using Block.Graph;
using Block.Qapi;
using Block.Qcow2.Format;
using Block.Qcow2.Metadata;

namespace Block.Qcow2.Driver;

internal sealed partial class Qcow2NodeDriver
{
    /// <inheritdoc />
    /// <remarks>
    /// <para>Growing extends the L1 table to exactly the size needed (a new table, then one header write), optionally
    /// preallocates, and on an image with a backing file zeroes the new area so the backing file's data beyond the old
    /// end does not appear. Shrinking frees every cluster past the new end, empties the L1 entries beyond it and trims
    /// the file after the last used cluster.</para>
    /// </remarks>
    public override async ValueTask TruncateAsync(long length, PreallocMode preallocation, bool exact)
    {
        if ((length & 511) != 0)
            throw new BlockException(Errno.EINVAL, "The new size must be a multiple of 512");
        if (_snapshots.Count > 0 && _header.Version < 3)
            throw new BlockException(Errno.ENOTSUP, "Can't resize a v2 image which has snapshots");
        CheckBitmapsAllowResize();
        long old = _size;
        if (length < old && preallocation != PreallocMode.Off)
            throw new BlockException(Errno.EINVAL, "Preallocation can't be used for shrinking an image");

        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            ThrowIfCorrupt();
            while (_inFlight.Count > 0)
            {
                var done = _inFlight[0].WhenDone();
                _lock.Release();
                try
                {
                    await done.ConfigureAwait(false);
                }
                finally
                {
                    await _lock.WaitAsync().ConfigureAwait(false);
                }
            }
            if (length < old)
                await ShrinkLockedAsync(length, old).ConfigureAwait(false);
            else
                await GrowL1Async(_layout.L1EntriesFor(length)).ConfigureAwait(false);
            // Host bytes that may still hold old data; anything the data file grows by below is fresh zeroes.
            long staleEnd = _data.Length;
            // The data file follows the virtual size, as QEMU's does; preallocation may then extend it to a whole cluster
            // (falloc and full grow it themselves, so that the whole new area is allocated).
            if (_hasDataFile && _data.Length != length && preallocation is PreallocMode.Off or PreallocMode.Metadata)
            {
                await _data.TruncateAsync(length, PreallocMode.Off, exact: true).ConfigureAwait(false);
                staleEnd = Math.Min(staleEnd, length);
            }
            if (length > old && preallocation != PreallocMode.Off)
                await PreallocateLockedAsync(old, length, preallocation, staleEnd).ConfigureAwait(false);
            await WriteHeaderFieldAsync(24, (ulong)length, 8).ConfigureAwait(false);
            _header.Size = (ulong)length;
            _size = length;
        }
        finally
        {
            _lock.Release();
        }

        if (length <= old)
            return;
        if (Node.Backing?.Node is { } backing && backing.Length > old && _header.Version >= 3 && preallocation == PreallocMode.Off)
        {
            // The area that was past the old end must not show the backing file's data (as QEMU, only a backing file
            // longer than the old end has data to show there).
            // Whole clusters get the zero flag; the rest of the old last cluster gets zero bytes.
            long zeroStart = _layout.AlignUp(old);
            if (zeroStart < length)
                await ChangeClustersAsync(zeroStart, length - zeroStart, ClusterChange.Zero).ConfigureAwait(false);
            if (zeroStart > old)
                await WriteSlowAsync(old, new Io.IoVector(new byte[Math.Min(zeroStart, length) - old])).ConfigureAwait(false);
        }
        else if (await TailHoldsDataAsync(old, Math.Min(length, _layout.AlignUp(old))).ConfigureAwait(false))
        {
            // A shrink keeps the last partial cluster whole: its bytes past the old end must not come back.
            await WriteSlowAsync(old, new Io.IoVector(new byte[Math.Min(length, _layout.AlignUp(old)) - old])).ConfigureAwait(false);
        }
    }

    /// <summary>True if some of <c>[start, end)</c> is mapped to data (normal or compressed) rather than zeroes or backing.</summary>
    private async ValueTask<bool> TailHoldsDataAsync(long start, long end)
    {
        for (long pos = start; pos < end;)
        {
            var run = await MapAsync(pos, end - pos).ConfigureAwait(false);
            if (run.Type is SubclusterType.Normal or SubclusterType.Compressed)
                return true;
            pos += run.Bytes;
        }
        return false;
    }

    private bool IsDataFileRaw => (_header.Autoclear & AutoclearFeatures.DataFileRaw) != 0;

    /// <summary>Writes one header field in place and syncs it.</summary>
    private async ValueTask WriteHeaderFieldAsync(int offset, ulong value, int bytes)
    {
        var buffer = new byte[bytes];
        if (bytes == 8)
            BinaryPrimitives.WriteUInt64BigEndian(buffer, value);
        else
            BinaryPrimitives.WriteUInt32BigEndian(buffer, (uint)value);
        await _file.WriteAsync(offset, buffer.AsMemory()).ConfigureAwait(false);
        await _file.FlushAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// Moves the active L1 table to a new one of exactly <paramref name="entries"/> entries: the new table is written
    /// and synced, then size and offset switch in one header write, then the old table is freed.
    /// </summary>
    private async ValueTask GrowL1Async(long entries)
    {
        if (entries <= _l1.Length)
            return;
        if (entries > Qcow2Header.MaxL1Entries)
            throw new BlockException(Errno.EFBIG, "Failed to grow the L1 table: File too large");
        int cs = _layout.ClusterSize;
        long bytes = entries * 8;
        long clusters = (((bytes + 511) & ~511L) + cs - 1) / cs;
        await _file.DebugEventAsync(BlkdebugEvent.L1GrowAllocTable).ConfigureAwait(false);
        long offset = await _refcounts.AllocateAsync(clusters).ConfigureAwait(false);
        var table = new ulong[entries];
        Array.Copy(_l1, table, _l1.Length);
        var raw = new byte[bytes];
        for (long i = 0; i < entries; i++)
            BinaryPrimitives.WriteUInt64BigEndian(raw.AsSpan((int)(i * 8)), table[i]);
        try
        {
            await _refcounts.Blocks.FlushAsync().ConfigureAwait(false);
            await CheckOverlapAsync(offset, bytes, Qcow2OverlapFlags.None).ConfigureAwait(false);
            await _file.DebugEventAsync(BlkdebugEvent.L1GrowWriteTable).ConfigureAwait(false);
            await _file.WriteAsync(offset, raw.AsMemory()).ConfigureAwait(false);
            await _file.FlushAsync().ConfigureAwait(false);
            var header = new byte[12];
            BinaryPrimitives.WriteUInt32BigEndian(header, (uint)entries);
            BinaryPrimitives.WriteUInt64BigEndian(header.AsSpan(4), (ulong)offset);
            await _file.DebugEventAsync(BlkdebugEvent.L1GrowActivateTable).ConfigureAwait(false);
            await _file.WriteAsync(36, header.AsMemory()).ConfigureAwait(false);
            await _file.FlushAsync().ConfigureAwait(false);
        }
        catch
        {
            await _refcounts.ReleaseAsync(offset, clusters).ConfigureAwait(false);
            throw;
        }
        long oldOffset = (long)_header.L1TableOffset;
        long oldLength = _l1.Length;
        _l1 = table;
        _header.L1Size = (uint)entries;
        _header.L1TableOffset = (ulong)offset;
        RefreshMetadataMap();
        if (oldLength > 0)
        {
            long oldClusters = (oldLength * 8 + cs - 1) / cs;
            await _refcounts.UpdateAsync(oldOffset >> _layout.ClusterBits, oldClusters, -1, DiscardReason.Other).ConfigureAwait(false);
        }
    }

    private async ValueTask ShrinkLockedAsync(long length, long old)
    {
        // Every cluster past the new end goes (whole clusters only: a partial last cluster keeps its data).
        long from = _layout.AlignUp(length);
        for (long pos = from; pos < old;)
        {
            long end = Math.Min(old, pos + ToSliceEnd(pos));
            // Like QEMU's discard of the cut-off range, this allocates missing L2 tables on the way (those past the new
            // L1 size are freed again below), so the file ends where QEMU's does.
            await ChangeSliceAsync(pos, end, ClusterChange.Cut).ConfigureAwait(false);
            pos = end;
        }
        // L2 tables beyond the new L1 size: empty the entries on disk first, then free the tables.
        long keep = _layout.L1EntriesFor(length);
        if (keep < _l1.Length)
        {
            await FlushMetadataLockedAsync().ConfigureAwait(false);
            var zeros = new byte[(_l1.Length - keep) * 8];
            long at = (long)_header.L1TableOffset + keep * 8;
            await CheckOverlapAsync(at, zeros.Length, Qcow2OverlapFlags.ActiveL1).ConfigureAwait(false);
            await _file.WriteAsync(at, zeros.AsMemory()).ConfigureAwait(false);
            await _file.FlushAsync().ConfigureAwait(false);
            for (long i = keep; i < _l1.Length; i++)
            {
                long l2 = (long)(_l1[i] & Qcow2Layout.OffsetMask);
                _l1[i] = 0;
                if (l2 == 0)
                    continue;
                _activeL2.Remove(l2);
                for (int s = 0; s < _layout.ClusterSize / _sliceBytes; s++)
                    _l2Cache.Discard(l2 + (long)s * _sliceBytes);
                await _refcounts.UpdateAsync(l2 >> _layout.ClusterBits, 1, -1, DiscardReason.Always).ConfigureAwait(false);
            }
            RefreshMetadataMap();
        }
        await FlushMetadataLockedAsync().ConfigureAwait(false);

        // Trim the file after the last cluster still in use.
        long fileLength = _file.Length;
        long last = await _refcounts.LastUsedClusterAsync(_layout.AlignUp(fileLength) >> _layout.ClusterBits).ConfigureAwait(false);
        long newEnd = (last + 1) << _layout.ClusterBits;
        if (newEnd < fileLength)
        {
            try
            {
                await _file.TruncateAsync(newEnd, PreallocMode.Off, exact: false).ConfigureAwait(false);
            }
            catch (BlockException e)
            {
                Node.Graph.Warn($"Failed to truncate the tail of the image: {e.Message}");
            }
        }
    }

    /// <summary>
    /// Allocates data clusters and L2 entries for the grown area (whole clusters past the old end), then gives the file
    /// its new length in the requested mode; clusters reused inside the old file are zeroed.
    /// </summary>
    private async ValueTask PreallocateLockedAsync(long old, long length, PreallocMode mode, long staleEnd)
    {
        int cs = _layout.ClusterSize;
        long fileLength = _data.Length;
        long hostEnd = 0;
        var reused = new List<(long Offset, long Length)>();
        for (long pos = _layout.AlignUp(old); pos < length;)
        {
            long end = Math.Min(length, pos + ToSliceEnd(pos));
            var (slice, index) = await GetSliceForWriteAsync(pos).ConfigureAwait(false);
            long clusters = (_layout.AlignUp(end) - pos) >> _layout.ClusterBits;
            if (_lazyRefcounts)
                await MarkDirtyAsync().ConfigureAwait(false);
            long host = _hasDataFile ? pos : await _refcounts.AllocateAsync(clusters).ConfigureAwait(false);
            if (!_lazyRefcounts)
                await _l2Cache.SetDependency(_refcounts.Blocks).ConfigureAwait(false);
            for (long c = 0; c < clusters; c++)
            {
                ulong entry = (ulong)(host + (c << _layout.ClusterBits)) | Qcow2Layout.Copied;
                // Subclusters stay unallocated (an empty bitmap): the backing file still shows, as in QEMU.
                SetEntry(slice.Data, index + (int)c, entry, 0);
            }
            MetadataCache.MarkDirty(slice);
            long hostStop = host + (clusters << _layout.ClusterBits);
            if (host < staleEnd)
                reused.Add((host, Math.Min(hostStop, staleEnd) - host));
            hostEnd = Math.Max(hostEnd, hostStop);
            pos = end;
        }
        foreach (var (offset, bytes) in reused)
            await _data.WriteZeroesAsync(offset, bytes, mode == PreallocMode.Metadata ? RequestFlags.MayUnmap : RequestFlags.None).ConfigureAwait(false);
        if (hostEnd > fileLength)
            await _data.TruncateAsync(hostEnd, mode == PreallocMode.Metadata ? PreallocMode.Off : mode, exact: false).ConfigureAwait(false);
        await FlushMetadataLockedAsync().ConfigureAwait(false);
        _metadataPreallocation = 0;
        _ = cs;
    }
}
