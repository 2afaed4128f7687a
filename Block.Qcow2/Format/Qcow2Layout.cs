namespace Block.Qcow2.Format;

/// <summary>The geometry of an image: cluster, L2 and refcount sizes and the entry bit layouts that follow from them.</summary>
internal sealed class Qcow2Layout
{
    /// <summary>Host offset bits 9–55 of L1 and L2 entries.</summary>
    public const ulong OffsetMask = 0x00fffffffffffe00UL;

    /// <summary>Bit 63: refcount is exactly one (writes may go in place).</summary>
    public const ulong Copied = 1UL << 63;

    /// <summary>Bit 62 of L2 entries: the cluster is compressed.</summary>
    public const ulong CompressedFlag = 1UL << 62;

    /// <summary>Bit 0 of standard L2 entries: the cluster reads as zeroes (version 3, without extended L2).</summary>
    public const ulong ZeroFlag = 1UL;

    /// <summary>Reserved bits of L1 entries.</summary>
    public const ulong L1Reserved = 0x7f000000000001ffUL;

    /// <summary>Reserved bits of standard L2 entries (zero flag excluded).</summary>
    public const ulong L2Reserved = 0x3f000000000001feUL;

    /// <summary>Subclusters per cluster with extended L2 entries.</summary>
    public const int Subclusters = 32;

    public Qcow2Layout(int clusterBits, bool extendedL2, int refcountOrder)
    {
        ClusterBits = clusterBits;
        ClusterSize = 1 << clusterBits;
        ExtendedL2 = extendedL2;
        L2EntrySize = extendedL2 ? 16 : 8;
        L2Bits = clusterBits - (extendedL2 ? 4 : 3);
        L2Entries = 1 << L2Bits;
        SubclusterBits = extendedL2 ? clusterBits - 5 : clusterBits;
        SubclusterSize = 1 << SubclusterBits;
        CompressedSizeShift = 62 - (clusterBits - 8);
        CompressedSizeMask = (1UL << (clusterBits - 8)) - 1;
        CompressedOffsetMask = (1UL << CompressedSizeShift) - 1;
        RefcountOrder = refcountOrder;
        RefcountBits = 1 << refcountOrder;
        RefcountBlockEntries = (long)ClusterSize * 8 / RefcountBits;
        MaxRefcount = RefcountBits == 64 ? long.MaxValue : (long)((1UL << RefcountBits) - 1);
    }

    public int ClusterBits { get; }

    public int ClusterSize { get; }

    public bool ExtendedL2 { get; }

    /// <summary>Bytes per L2 entry: 8, or 16 with extended L2.</summary>
    public int L2EntrySize { get; }

    /// <summary>log2 of the entries per L2 table.</summary>
    public int L2Bits { get; }

    /// <summary>Entries per L2 table.</summary>
    public int L2Entries { get; }

    public int SubclusterBits { get; }

    public int SubclusterSize { get; }

    public int CompressedSizeShift { get; }

    public ulong CompressedSizeMask { get; }

    public ulong CompressedOffsetMask { get; }

    public int RefcountOrder { get; }

    public int RefcountBits { get; }

    /// <summary>Refcount entries per refcount block.</summary>
    public long RefcountBlockEntries { get; }

    /// <summary>Largest refcount the width allows.</summary>
    public long MaxRefcount { get; }

    /// <summary>Guest bytes one L2 table maps.</summary>
    public long L2Coverage => (long)L2Entries << ClusterBits;

    public long ClusterIndex(long offset) => offset >> ClusterBits;

    public long L1Index(long guestOffset) => guestOffset >> (ClusterBits + L2Bits);

    public int L2Index(long guestOffset) => (int)((guestOffset >> ClusterBits) & (L2Entries - 1));

    public long OffsetInCluster(long offset) => offset & (ClusterSize - 1);

    public long AlignDown(long offset) => offset & ~(long)(ClusterSize - 1);

    public long AlignUp(long offset) => (offset + ClusterSize - 1) & ~(long)(ClusterSize - 1);

    /// <summary>L1 entries needed for a disk of <paramref name="size"/> bytes.</summary>
    public long L1EntriesFor(long size) => (size + L2Coverage - 1) / L2Coverage;

    /// <summary>Host byte offset and byte length a compressed cluster's descriptor points at.</summary>
    public (long Offset, int Length) CompressedExtent(ulong entry)
    {
        long offset = (long)(entry & CompressedOffsetMask);
        long sectors = (long)((entry >> CompressedSizeShift) & CompressedSizeMask) + 1;
        long length = sectors * 512 - (offset & 511);
        return (offset, (int)length);
    }

    /// <summary>The compressed descriptor for <paramref name="length"/> bytes at <paramref name="offset"/>.</summary>
    public ulong CompressedEntry(long offset, int length)
    {
        ulong additional = (ulong)(((offset + length - 1) >> 9) - (offset >> 9));
        return CompressedFlag | ((ulong)offset & CompressedOffsetMask) | (additional << CompressedSizeShift);
    }
}

/// <summary>What a guest subcluster is, as its L2 entry (and bitmap) say.</summary>
internal enum SubclusterType
{
    /// <summary>Not allocated, no host cluster: read from the backing node, or zeroes.</summary>
    UnallocatedPlain,
    /// <summary>Not allocated, but the cluster has a host cluster (extended L2): read from backing; writes reuse the cluster.</summary>
    UnallocatedAlloc,
    /// <summary>Reads as zeroes, no host cluster.</summary>
    ZeroPlain,
    /// <summary>Reads as zeroes, host cluster kept (preallocated zero).</summary>
    ZeroAlloc,
    /// <summary>Data in the host cluster.</summary>
    Normal,
    /// <summary>A compressed cluster.</summary>
    Compressed,
    /// <summary>An invalid combination of bits: the image is corrupt.</summary>
    Invalid,
}
