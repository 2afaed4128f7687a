using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Block.Qcow2.Format;

namespace Block.Qcow2.Driver;

internal sealed partial class Qcow2NodeDriver
{
    /// <summary>
    /// A run of guest bytes that all have one subcluster type and, for types with host data, map to contiguous host
    /// bytes starting at <see cref="Host"/>.
    /// </summary>
    private readonly record struct Run(SubclusterType Type, long Bytes, long Host, ulong Entry);

    /// <summary>Reads word 1 (the cluster descriptor) of L2 entry <paramref name="index"/> of a slice.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong EntryAt(byte[] slice, int index) =>
        BinaryPrimitives.ReadUInt64BigEndian(slice.AsSpan(index * _layout.L2EntrySize));

    /// <summary>Reads word 2 (the subcluster bitmap) of an extended L2 entry; 0 for standard entries.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ulong BitmapAt(byte[] slice, int index) =>
        _layout.ExtendedL2 ? BinaryPrimitives.ReadUInt64BigEndian(slice.AsSpan(index * 16 + 8)) : 0;

    private void SetEntry(byte[] slice, int index, ulong entry, ulong bitmap)
    {
        // The bitmap first and the descriptor last: a lock-free reader that sees the new descriptor with the old
        // bitmap reads an older, valid state; one that sees an invalid mix retries under the lock.
        if (_layout.ExtendedL2)
            BinaryPrimitives.WriteUInt64BigEndian(slice.AsSpan(index * 16 + 8), bitmap);
        BinaryPrimitives.WriteUInt64BigEndian(slice.AsSpan(index * _layout.L2EntrySize), entry);
    }

    /// <summary>Whether an L2 entry points at host data (with an external data file, offset 0 is valid when COPIED is set).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool HasHost(ulong entry) =>
        (entry & Qcow2Layout.OffsetMask) != 0 || (_hasDataFile && (entry & Qcow2Layout.Copied) != 0);

    /// <summary>The type of subcluster <paramref name="sc"/> of a cluster with L2 entry <paramref name="entry"/>.</summary>
    private SubclusterType TypeOf(ulong entry, ulong bitmap, int sc)
    {
        if ((entry & Qcow2Layout.CompressedFlag) != 0)
            return _hasDataFile ? SubclusterType.Invalid : SubclusterType.Compressed;
        bool host = HasHost(entry);
        if (host && (entry & Qcow2Layout.OffsetMask & (ulong)(_layout.ClusterSize - 1)) != 0)
            return SubclusterType.Invalid;
        if (!_layout.ExtendedL2)
        {
            if ((entry & Qcow2Layout.ZeroFlag) != 0)
                return host ? SubclusterType.ZeroAlloc : SubclusterType.ZeroPlain;
            return host ? SubclusterType.Normal : SubclusterType.UnallocatedPlain;
        }
        bool alloc = ((bitmap >> sc) & 1) != 0;
        bool zero = ((bitmap >> (32 + sc)) & 1) != 0;
        if (host)
        {
            if (alloc && zero)
                return SubclusterType.Invalid;
            return zero ? SubclusterType.ZeroAlloc : alloc ? SubclusterType.Normal : SubclusterType.UnallocatedAlloc;
        }
        if ((bitmap & 0xffffffffUL) != 0)
            return SubclusterType.Invalid;
        return zero ? SubclusterType.ZeroPlain : SubclusterType.UnallocatedPlain;
    }

    private static bool HasHostData(SubclusterType t) =>
        t is SubclusterType.Normal or SubclusterType.ZeroAlloc or SubclusterType.UnallocatedAlloc;

    /// <summary>
    /// Describes the run starting at <paramref name="offset"/> (at most <paramref name="bytes"/>) from an L2 slice,
    /// where <paramref name="index"/> is the index in the slice of the cluster holding <paramref name="offset"/>.
    /// The run never leaves the slice.
    /// </summary>
    private Run Describe(byte[] slice, int index, long offset, long bytes)
    {
        int cs = _layout.ClusterSize;
        int scBits = _layout.SubclusterBits;
        long end = offset + bytes;
        ulong entry = EntryAt(slice, index);
        ulong bitmap = BitmapAt(slice, index);
        long inCluster = offset & (cs - 1);
        var type = TypeOf(entry, bitmap, (int)(inCluster >> scBits));
        long host = HasHostData(type) ? (long)(entry & Qcow2Layout.OffsetMask) + inCluster : 0;
        long clusterStart = offset - inCluster;
        if (type == SubclusterType.Compressed)
            return new Run(type, Math.Min(end, clusterStart + cs) - offset, host, entry);
        if (type == SubclusterType.Invalid)
            return new Run(type, Math.Min(end, (offset | (long)(_layout.SubclusterSize - 1)) + 1) - offset, host, entry);

        long pos = (offset | (long)(_layout.SubclusterSize - 1)) + 1;
        while (pos < end)
        {
            long inC = pos & (cs - 1);
            if (inC == 0)
            {
                if (++index >= _sliceEntries)
                    break;
                entry = EntryAt(slice, index);
                bitmap = BitmapAt(slice, index);
                if (host != 0 && (long)(entry & Qcow2Layout.OffsetMask) != host + (pos - offset))
                    break;
            }
            if (TypeOf(entry, bitmap, (int)(inC >> scBits)) != type)
                break;
            pos += _layout.SubclusterSize;
        }
        return new Run(type, Math.Min(pos, end) - offset, host, entry);
    }

    /// <summary>Where the L2 slice covering <paramref name="offset"/> lives, or 0 if its L2 table is not allocated.</summary>
    /// <exception cref="BlockException">The L1 entry points at an unaligned offset (the image is corrupt).</exception>
    private long SliceOffset(ulong[] l1, long offset, out int index)
    {
        long l1Index = _layout.L1Index(offset);
        int l2Index = _layout.L2Index(offset);
        index = l2Index % _sliceEntries;
        if (l1Index >= l1.Length)
            return 0;
        long l2 = (long)(l1[l1Index] & Qcow2Layout.OffsetMask);
        if (l2 == 0)
            return 0;
        if ((l2 & (_layout.ClusterSize - 1)) != 0)
            return -1;
        return l2 + (long)(l2Index / _sliceEntries) * _sliceBytes;
    }

    /// <summary>Bytes from <paramref name="offset"/> to the end of its L2 slice.</summary>
    private long ToSliceEnd(long offset)
    {
        long sliceCoverage = (long)_sliceEntries << _layout.ClusterBits;
        return sliceCoverage - (offset & (sliceCoverage - 1));
    }

    /// <summary>Maps a run without locks or I/O, if the L2 slice is cached. False means: take the slow path.</summary>
    private bool TryMapCached(long offset, long bytes, out Run run)
    {
        var l1 = _l1;
        long slice = SliceOffset(l1, offset, out int index);
        long max = Math.Min(bytes, ToSliceEnd(offset));
        if (slice == 0)
        {
            run = new Run(SubclusterType.UnallocatedPlain, max, 0, 0);
            return true;
        }
        if (slice < 0 || _l2Cache.TryGet(slice) is not { } e)
        {
            run = default;
            return false;
        }
        run = Describe(e.Data, index, offset, max);
        return run.Type != SubclusterType.Invalid;
    }

    /// <summary>Maps a run, reading the L2 slice under the metadata lock if needed. Invalid entries mark the image corrupt.</summary>
    private async ValueTask<Run> MapAsync(long offset, long bytes)
    {
        if (TryMapCached(offset, bytes, out var run))
            return run;
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            return await MapLockedAsync(offset, bytes).ConfigureAwait(false);
        }
        finally
        {
            _lock.Release();
        }
    }

    private async ValueTask<Run> MapLockedAsync(long offset, long bytes)
    {
        ThrowIfCorrupt();
        long slice = SliceOffset(_l1, offset, out int index);
        long max = Math.Min(bytes, ToSliceEnd(offset));
        if (slice == 0)
            return new Run(SubclusterType.UnallocatedPlain, max, 0, 0);
        if (slice < 0)
        {
            long l1Index = _layout.L1Index(offset);
            throw await SignalCorruptionAsync(UnalignedL2Message(l1Index),
                (long)(_l1[l1Index] & Qcow2Layout.OffsetMask), null).ConfigureAwait(false);
        }
        var e = await _l2Cache.GetAsync(slice).ConfigureAwait(false);
        var run = Describe(e.Data, index, offset, max);
        if (run.Type == SubclusterType.Invalid)
        {
            ulong entry = EntryAt(e.Data, index);
            throw await SignalCorruptionAsync(InvalidEntryMessage(entry, offset),
                (long)(entry & Qcow2Layout.OffsetMask), null).ConfigureAwait(false);
        }
        return run;
    }

    /// <summary>QEMU's message for an invalid L2 entry met at guest <paramref name="offset"/>.</summary>
    private string InvalidEntryMessage(ulong entry, long offset)
    {
        string where = $"L2 offset: {Hex((long)(_l1[_layout.L1Index(offset)] & Qcow2Layout.OffsetMask))}, L2 index: {Hex(_layout.L2Index(offset))}";
        if ((entry & Qcow2Layout.CompressedFlag) != 0)
            return $"Compressed cluster entry found in image with external data file ({where})";
        if (HasHost(entry) && (entry & Qcow2Layout.OffsetMask & (ulong)(_layout.ClusterSize - 1)) != 0)
            return $"Cluster allocation offset {Hex((long)(entry & Qcow2Layout.OffsetMask))} unaligned ({where})";
        return $"Invalid cluster entry found  ({where})";
    }

    /// <summary>C's <c>%#x</c>, which QEMU's messages use: <c>0x42000</c>, but <c>0</c> for zero.</summary>
    private static string Hex(long value) => value == 0 ? "0" : $"0x{value:x}";

    private string UnalignedL2Message(long l1Index) =>
        $"L2 table offset {Hex((long)(_l1[l1Index] & Qcow2Layout.OffsetMask))} unaligned (L1 index: {Hex(l1Index)})";
}
