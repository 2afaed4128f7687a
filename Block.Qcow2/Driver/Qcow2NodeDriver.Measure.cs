using System.Buffers.Binary;
using Block.Qcow2.Format;

namespace Block.Qcow2.Driver;

internal sealed partial class Qcow2NodeDriver
{
    /// <summary>Largest bitmap directory QEMU reads (64 MiB).</summary>
    private const long MaxBitmapDirectoryBytes = 64L << 20;

    /// <summary>
    /// What this image's persistent dirty bitmaps would take in a new image of <paramref name="clusterSize"/>-byte
    /// clusters (<c>qemu-img measure</c>'s <c>bitmaps size</c>), or null for a version 2 image, which cannot hold any.
    /// </summary>
    /// <remarks>Each bitmap is counted fully allocated: its bits in whole clusters, its bitmap table in whole clusters;
    /// then the directory in whole clusters. A bitmaps extension whose autoclear bit is clear is stale and holds no
    /// bitmaps, as QEMU reads it.</remarks>
    public async ValueTask<long?> PersistentBitmapsSizeAsync(long clusterSize)
    {
        if (_header.Version < 3)
            return null;
        if (_header.BitmapsExtension is not { Length: >= 24 } ext || (_header.Autoclear & AutoclearFeatures.Bitmaps) == 0)
            return 0;
        uint count = BinaryPrimitives.ReadUInt32BigEndian(ext);
        long directoryBytes = (long)BinaryPrimitives.ReadUInt64BigEndian(ext.AsSpan(8));
        long directoryOffset = (long)BinaryPrimitives.ReadUInt64BigEndian(ext.AsSpan(16));
        if (directoryBytes <= 0 || directoryBytes > MaxBitmapDirectoryBytes || directoryOffset <= 0 || directoryOffset > _file.Length - directoryBytes)
            throw new ImageFormatException("Bitmap directory lies outside the image file");
        var directory = new byte[directoryBytes];
        await _file.ReadAsync(directoryOffset, directory.AsMemory()).ConfigureAwait(false);

        long total = 0, newDirectoryBytes = 0;
        int pos = 0;
        for (uint i = 0; i < count; i++)
        {
            if (pos + 24 > directory.Length)
                throw new ImageFormatException("Bitmap directory entry lies outside the directory");
            int granularityBits = directory[pos + 17];
            int nameBytes = BinaryPrimitives.ReadUInt16BigEndian(directory.AsSpan(pos + 18));
            uint extraBytes = BinaryPrimitives.ReadUInt32BigEndian(directory.AsSpan(pos + 20));
            if (granularityBits > 63 || extraBytes > directory.Length)
                throw new ImageFormatException("Invalid bitmap directory entry");
            // One bit per granule of the disk, every cluster of it allocated, and its table of 8-byte entries.
            long granules = (long)(((ulong)_size + (1UL << granularityBits) - 1) >> granularityBits);
            long bitmapClusters = ((granules + 7) / 8 + clusterSize - 1) / clusterSize;
            total += bitmapClusters * clusterSize;
            total += (bitmapClusters * 8 + clusterSize - 1) / clusterSize * clusterSize;
            newDirectoryBytes += (24 + nameBytes + 7) & ~7;
            pos += (int)((24 + extraBytes + nameBytes + 7) & ~7u);
        }
        return total + (newDirectoryBytes + clusterSize - 1) / clusterSize * clusterSize;
    }
}
