using System.Numerics;
using Block.Crypto.Luks;
using Block.Drivers;
using Block.Graph;
using Block.Qapi;
using Block.Qcow2.Driver;

namespace Block.Qcow2;

/// <summary>
/// <c>qemu-img measure -O qcow2</c>: the size of a new qcow2 image for a disk size or an input image, from the format's
/// geometry: one header cluster, L2 tables for every guest cluster, an L1 table, and the refcount structure that counts
/// all of them and itself.
/// </summary>
/// <remarks>
/// "Fully allocated" is the image with every guest cluster allocated (what <c>preallocation=full</c> creates);
/// "required" is the same metadata with only the input's data clusters: it overestimates by the metadata of unallocated
/// ranges, as QEMU's does. The options are checked in QEMU's order and with its messages, which differ from
/// <c>qemu-img create</c>'s.
/// </remarks>
internal static class Qcow2Measure
{
    /// <summary>QEMU's limit on the L1 table (32 MiB).</summary>
    private const ulong MaxL1Bytes = 32UL << 20;

    public static async ValueTask<BlockMeasureInfo> MeasureAsync(ImageCreateRequest r, BlockNode? input, CancellationToken cancellationToken)
    {
        ulong clusterSize = r.GetSize("cluster_size") ?? 65536;
        if (clusterSize < 512 || clusterSize > 2 << 20 || !BitOperations.IsPow2(clusterSize))
            throw new BlockOptionsException("Cluster size must be a power of two between 512 and 2048k");
        int clusterBits = BitOperations.Log2(clusterSize);
        bool extendedL2 = r.GetBool("extended_l2") ?? false;
        if (extendedL2 && clusterBits < 14)
            throw new BlockOptionsException("Extended L2 entries are only supported with cluster sizes of at least 16384 bytes");

        int version = r.GetString("compat") switch
        {
            null or "1.1" => 3,
            "0.10" => 2,
            var other => throw new BlockOptionsException($"Invalid compatibility level: '{other}'"),
        };
        long refcountBits = r.GetNumber("refcount_bits") ?? 16;
        if (refcountBits < 1 || refcountBits > 64 || !BitOperations.IsPow2((ulong)refcountBits))
            throw new BlockOptionsException("Refcount width must be a power of two and may not exceed 64 bits");
        if (version < 3 && refcountBits != 16)
            throw new BlockOptionsException("Different refcount widths than 16 bits require compatibility level 1.1 or above (use compat=1.1 or greater)");
        int refcountOrder = BitOperations.Log2((ulong)refcountBits);
        var prealloc = r.GetEnum<PreallocMode>("preallocation") ?? PreallocMode.Off;

        // The LUKS header takes whole clusters in the image; the legacy AES method has no header.
        long encryptionBytes = 0;
        if (r.GetString("encrypt.format") == "luks")
            encryptionBytes = (long)AlignUp((ulong)LuksCreateOptions.MeasureHeaderBytes(r, "encrypt."), clusterSize);

        ulong diskSize = input != null ? (ulong)input.Length : r.Size ?? 0;
        ulong virtualSize = AlignUp(diskSize, clusterSize);
        ulong l2Entries = clusterSize / (extendedL2 ? 16UL : 8UL);
        ulong l2Tables = (virtualSize / clusterSize + l2Entries - 1) / l2Entries;
        if (l2Tables * 8 > MaxL1Bytes)
            throw new BlockOptionsException("The image size is too large (try using a larger cluster size)");

        long data = 0;
        long? bitmaps = null;
        if (prealloc is PreallocMode.Full or PreallocMode.Falloc)
            data = (long)virtualSize;
        else if (input != null)
            data = await AllocatedBytesAsync(input, (long)clusterSize, cancellationToken).ConfigureAwait(false);
        if (input?.Impl is Qcow2NodeDriver qcow2 && version >= 3)
            bitmaps = await qcow2.PersistentBitmapsSizeAsync((long)clusterSize).ConfigureAwait(false);

        long fully = encryptionBytes + FullyAllocatedSize((long)virtualSize, clusterBits, refcountOrder, extendedL2);
        return new BlockMeasureInfo
        {
            Required = fully - (long)virtualSize + data,
            FullyAllocated = fully,
            Bitmaps = bitmaps,
        };
    }

    /// <summary>
    /// Bytes of whole clusters that hold data somewhere in <paramref name="input"/>'s chain (what a copy allocates):
    /// zero ranges are skipped, each data range is widened to the clusters it touches.
    /// </summary>
    private static async ValueTask<long> AllocatedBytesAsync(BlockNode input, long clusterSize, CancellationToken cancellationToken)
    {
        long size = input.Length;
        long bytes = 0;
        for (long offset = 0; offset < size;)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var (status, _) = await input.GetBlockStatusAboveAsync(offset, size - offset).ConfigureAwait(false);
            long run = Math.Max(status.Bytes, 1);
            if (!status.Has(BlockStatusFlags.Zero) && status.Has(BlockStatusFlags.Data) && status.Has(BlockStatusFlags.Allocated))
            {
                // Count from the start of the first cluster touched to the end of the last one.
                long end = (offset + run + clusterSize - 1) / clusterSize * clusterSize;
                bytes += offset % clusterSize + (end - offset);
                run = end - offset;
            }
            offset += run;
        }
        return bytes;
    }

    /// <summary>
    /// The size of an image of <paramref name="virtualSize"/> bytes (a cluster multiple) with every cluster allocated:
    /// the data, one header cluster, all L2 tables, the L1 table in whole clusters, and the refcount structure.
    /// </summary>
    public static long FullyAllocatedSize(long virtualSize, int clusterBits, int refcountOrder, bool extendedL2)
    {
        long cs = 1L << clusterBits;
        int l2EntryBytes = extendedL2 ? 16 : 8;
        long entriesPerL2 = cs / l2EntryBytes;
        long l2Entries = RoundUp(virtualSize / cs, entriesPerL2);
        long l2Tables = l2Entries / entriesPerL2;
        long l1Entries = RoundUp(l2Tables, cs / 8);
        long metadata = cs + l2Entries * l2EntryBytes + l1Entries * 8;
        metadata += RefcountMetadataBytes((metadata + virtualSize) / cs, clusterBits, refcountOrder);
        return metadata + virtualSize;
    }

    /// <summary>
    /// Bytes of refcount blocks and table needed to count <paramref name="clusters"/> clusters and themselves: the
    /// smallest fixed point, found by adding blocks and table clusters until they count everything including themselves.
    /// </summary>
    public static long RefcountMetadataBytes(long clusters, int clusterBits, int refcountOrder)
    {
        long refcountsPerBlock = (1L << clusterBits) * 8 >> refcountOrder;
        long entriesPerTableCluster = (1L << clusterBits) / 8;
        long blocks = 0, table = 0, total = -1;
        while (clusters + blocks + table != total)
        {
            total = clusters + blocks + table;
            blocks = (total + refcountsPerBlock - 1) / refcountsPerBlock;
            table = (blocks + entriesPerTableCluster - 1) / entriesPerTableCluster;
        }
        return (blocks + table) << clusterBits;
    }

    private static ulong AlignUp(ulong value, ulong alignment) => (value + alignment - 1) / alignment * alignment;

    private static long RoundUp(long value, long multiple) => (value + multiple - 1) / multiple * multiple;
}
