using System.Numerics;

namespace Block.Qcow2.Driver;

/// <summary>
/// QEMU's rules for the metadata cache options: at most two of <c>cache-size</c>, <c>l2-cache-size</c> and
/// <c>refcount-cache-size</c>; the L2 cache by default just covers the whole image, capped at 32 MiB; the refcount
/// cache four clusters; L2 entries are slices of 4 KiB (or the cluster size if smaller).
/// </summary>
internal readonly record struct Qcow2CacheSizes(long L2Bytes, long L2EntryBytes, long RefcountBytes, long CleanIntervalSeconds)
{
    public const long DefaultL2Max = 32L << 20;
    public const int MinRefcountClusters = 4;

    /// <summary>Resolves the options for an image of <paramref name="virtualSize"/> bytes.</summary>
    /// <exception cref="BlockOptionsException">An invalid combination, with QEMU's message.</exception>
    public static Qcow2CacheSizes Resolve(BlockdevOptionsQcow2 o, long virtualSize, int clusterSize, int l2EntrySize)
    {
        int given = (o.CacheSize != null ? 1 : 0) + (o.L2CacheSize != null ? 1 : 0) + (o.RefcountCacheSize != null ? 1 : 0);
        if (given == 3)
            throw new BlockOptionsException("cache-size, l2-cache-size and refcount-cache-size may not be set at the same time");
        foreach (var (name, v) in new[] { ("cache-size", o.CacheSize), ("l2-cache-size", o.L2CacheSize), ("refcount-cache-size", o.RefcountCacheSize) })
        {
            if (v < 0)
                throw new BlockOptionsException($"{name} must not be negative");
        }

        long entryBytes = o.L2CacheEntrySize ?? Math.Min(clusterSize, 4096);
        if (entryBytes < 512 || entryBytes > clusterSize || !BitOperations.IsPow2(entryBytes))
            throw new BlockOptionsException($"L2 cache entry size must be a power of two between 512 and the cluster size ({clusterSize})");

        // Enough L2 cache to map the whole disk.
        long clusters = (virtualSize + clusterSize - 1) / clusterSize;
        long wholeImage = Math.Max(clusters * l2EntrySize, clusterSize);
        wholeImage = (wholeImage + clusterSize - 1) / clusterSize * clusterSize;
        long minRefcount = (long)MinRefcountClusters * clusterSize;
        long minL2 = 2L * clusterSize;

        long l2, refcount;
        if (o.CacheSize is { } total)
        {
            if (o.L2CacheSize is { } l2Given)
            {
                if (l2Given > total)
                    throw new BlockOptionsException("l2-cache-size may not exceed cache-size");
                l2 = l2Given;
                refcount = total - l2Given;
            }
            else if (o.RefcountCacheSize is { } rcGiven)
            {
                if (rcGiven > total)
                    throw new BlockOptionsException("refcount-cache-size may not exceed cache-size");
                refcount = rcGiven;
                l2 = total - rcGiven;
            }
            else
            {
                // The L2 cache takes as much as it can use; the rest goes to refcounts.
                l2 = Math.Min(wholeImage, Math.Max(total - minRefcount, 0));
                refcount = total - l2;
            }
        }
        else
        {
            l2 = o.L2CacheSize ?? Math.Min(wholeImage, DefaultL2Max);
            refcount = o.RefcountCacheSize ?? minRefcount;
        }
        l2 = Math.Max(l2, minL2);
        refcount = Math.Max(refcount, minRefcount);

        long interval = o.CacheCleanInterval ?? 600;
        if (interval < 0 || interval > uint.MaxValue)
            throw new BlockOptionsException("Cache clean interval too big");
        return new Qcow2CacheSizes(l2, entryBytes, refcount, interval);
    }
}
