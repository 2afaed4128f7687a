namespace Block.Qcow2.Driver;

internal sealed partial class Qcow2NodeDriver
{
    /// <summary>
    /// What this image's persistent dirty bitmaps would take in a new image of <paramref name="clusterSize"/>-byte
    /// clusters (<c>qemu-img measure</c>'s <c>bitmaps size</c>), or null for a version 2 image, which cannot hold any.
    /// </summary>
    /// <remarks>Each bitmap is counted fully allocated: its bits in whole clusters, its bitmap table in whole clusters;
    /// then the directory in whole clusters. A bitmaps extension whose autoclear bit is clear is stale and holds no
    /// bitmaps, as QEMU reads it.</remarks>
    public ValueTask<long?> PersistentBitmapsSizeAsync(long clusterSize)
    {
        if (_header.Version < 3)
            return ValueTask.FromResult<long?>(null);
        // The directory read and validated at open (empty when the extension is stale).
        long total = 0, newDirectoryBytes = 0;
        foreach (var entry in _bitmapDirectory)
        {
            // One bit per granule of the disk, every cluster of it allocated, and its table of 8-byte entries.
            long granules = (long)(((ulong)_size + (1UL << entry.GranularityBits) - 1) >> entry.GranularityBits);
            long bitmapClusters = ((granules + 7) / 8 + clusterSize - 1) / clusterSize;
            total += bitmapClusters * clusterSize;
            total += (bitmapClusters * 8 + clusterSize - 1) / clusterSize * clusterSize;
            newDirectoryBytes += (24 + entry.NameBytes.Length + 7) & ~7;
        }
        return ValueTask.FromResult<long?>(total + (newDirectoryBytes + clusterSize - 1) / clusterSize * clusterSize);
    }
}
