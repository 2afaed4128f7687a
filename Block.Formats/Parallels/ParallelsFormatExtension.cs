using System.Buffers.Binary;
using System.Globalization;
using System.Security.Cryptography;
using Block.Bitmaps;
using Block.Graph;

namespace Block.Formats.Parallels;

/// <summary>
/// The Parallels Format Extension: one cluster, addressed by the header's <c>ext_off</c>, holding an MD5-checked list
/// of features, of which QEMU 7.2 knows one, the dirty bitmap. Read as QEMU 7.2 reads it, for read-only opens only.
/// </summary>
/// <remarks>
/// Each bitmap becomes a read-only, recording, non-persistent dirty bitmap of the node, named by its 16-byte id as a
/// UUID string, as <c>query-named-block-nodes</c> shows it on qemu-storage-daemon 7.2. Every field is checked before it
/// is used, with QEMU's messages; the one check QEMU 7.2 lacks (a granularity that is not a power of two of at least a
/// sector, on which it aborts) takes the message of the later QEMU that added it.
/// </remarks>
internal static class ParallelsFormatExtension
{
    private const ulong Magic = 0xAB234CEF23DCEA87;
    private const ulong EndOfFeaturesMagic = 0;
    private const ulong DirtyBitmapMagic = 0x20385FAE252CB34A;
    private const int HeaderSize = 24;          // magic, MD5 of the rest of the cluster
    private const int FeatureHeaderSize = 24;   // magic, flags, data size, padding
    private const int BitmapFeatureSize = 32;   // size in sectors, id, granularity in sectors, L1 entries

    /// <summary>One dirty bitmap feature: its name, its granularity in bytes and its L1 table.</summary>
    private sealed record BitmapFeature(string Name, long Granularity, ulong[] L1);

    /// <summary>
    /// Reads the extension cluster at <paramref name="extOffset"/> of <paramref name="file"/> and returns its bitmaps,
    /// filled from their data clusters; bytes past the end of the file read as zeroes, as QEMU reads them.
    /// </summary>
    /// <exception cref="ImageFormatException">The extension or one of its bitmaps is not valid (QEMU's message).</exception>
    public static async ValueTask<List<DirtyBitmap>> LoadBitmapsAsync(BlockNode file, long extOffset, long clusterSize, ulong diskSectors)
    {
        var cluster = new byte[clusterSize];
        await ReadPastEndAsZeroesAsync(file, extOffset, cluster).ConfigureAwait(false);
        long diskBytes = (long)diskSectors * 512;
        var features = Parse(cluster, diskSectors, clusterSize);
        var bitmaps = new List<DirtyBitmap>(features.Count);
        foreach (var feature in features)
        {
            var bitmap = new DirtyBitmap(feature.Name, diskBytes, feature.Granularity);
            for (int i = 0; i < feature.L1.Length; i++)
            {
                long at = i * clusterSize;
                long bytes = Math.Min(clusterSize, bitmap.SerializedLength - at);
                ulong entry = feature.L1[i];
                if (entry == 0 || bytes <= 0)
                    continue;
                if (entry == 1)
                {
                    bitmap.DeserializeOnes(at, bytes);
                    continue;
                }
                if (entry > (ulong)(long.MaxValue - clusterSize) / 512)
                    throw new ImageFormatException("Failed to read bitmap data cluster: Invalid argument", Errno.EINVAL);
                await ReadPastEndAsZeroesAsync(file, (long)entry * 512, cluster.AsMemory(0, (int)bytes)).ConfigureAwait(false);
                bitmap.Deserialize(at, cluster.AsSpan(0, (int)bytes));
            }
            bitmap.ReadOnly = true;
            bitmaps.Add(bitmap);
        }
        return bitmaps;
    }

    /// <summary>Checks the cluster and lists its bitmap features, in QEMU's order of checks.</summary>
    private static List<BitmapFeature> Parse(ReadOnlySpan<byte> cluster, ulong diskSectors, long clusterSize)
    {
        ulong magic = BinaryPrimitives.ReadUInt64LittleEndian(cluster);
        if (magic != Magic)
            throw Invalid($"Wrong parallels Format Extension magic: 0x{magic:x}, expected: 0x{Magic:x}");
        if (!MD5.HashData(cluster[HeaderSize..]).AsSpan().SequenceEqual(cluster[8..HeaderSize]))
            throw Invalid($"Wrong checksum in Format Extension header. Format extension is corrupted.");

        var features = new List<BitmapFeature>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        var rest = cluster[HeaderSize..];
        while (true)
        {
            if (rest.Length < FeatureHeaderSize)
            {
                throw Invalid(
                    $"Can not read feature header, as remaining bytes ({rest.Length}) in Format Extension is less than Feature header size ({FeatureHeaderSize})");
            }
            ulong featureMagic = BinaryPrimitives.ReadUInt64LittleEndian(rest);
            ulong flags = BinaryPrimitives.ReadUInt64LittleEndian(rest[8..]);
            uint dataSize = BinaryPrimitives.ReadUInt32LittleEndian(rest[16..]);
            rest = rest[FeatureHeaderSize..];
            if (flags != 0)
                throw Invalid($"Flags for extension feature are unsupported");
            ulong padded = ((ulong)dataSize + 7) & ~7UL;
            if (padded > (ulong)rest.Length)
                throw Invalid($"Feature data_size exceedes Format Extension cluster");
            switch (featureMagic)
            {
                case EndOfFeaturesMagic:
                    return features;
                case DirtyBitmapMagic:
                    var feature = ParseBitmap(rest[..(int)dataSize], diskSectors, clusterSize);
                    if (!names.Add(feature.Name))
                        throw Invalid($"Bitmap already exists: {feature.Name}");
                    features.Add(feature);
                    break;
                default:
                    throw Invalid($"Unknown feature: 0x{featureMagic:x}");
            }
            rest = rest[(int)padded..];
        }
    }

    private static BitmapFeature ParseBitmap(ReadOnlySpan<byte> data, ulong diskSectors, long clusterSize)
    {
        if (data.Length < BitmapFeatureSize)
        {
            throw Invalid(
                $"Too small Bitmap Feature area in Parallels Format Extension: {data.Length} bytes, expected at least {BitmapFeatureSize} bytes");
        }
        ulong sizeSectors = BinaryPrimitives.ReadUInt64LittleEndian(data);
        uint granularitySectors = BinaryPrimitives.ReadUInt32LittleEndian(data[24..]);
        uint l1Size = BinaryPrimitives.ReadUInt32LittleEndian(data[28..]);
        if (sizeSectors != diskSectors)
            throw Invalid($"Bitmap size (in sectors) {(long)sizeSectors} differs from disk size in sectors {diskSectors}");
        ulong granularity = (ulong)granularitySectors * 512;
        if (granularity < 512 || granularity > uint.MaxValue || !ulong.IsPow2(granularity))
        {
            throw Invalid($"Invalid bitmap granularity {granularity}, expected a power of two of at least 512 bytes");
        }
        if ((ulong)l1Size * 8 > (ulong)(data.Length - BitmapFeatureSize))
            throw Invalid($"Bitmaps feature corrupted: l1 table exceeds extension data_size");
        string name = new Guid(data[8..24], bigEndian: true).ToString("D");

        // QEMU serializes bitmaps in 64-bit words; its table covers that many bytes, a cluster per entry.
        ulong bits = (diskSectors * 512 + granularity - 1) / granularity;
        ulong serializedBytes = (bits + 63) / 64 * 8;
        ulong expected = (serializedBytes + (ulong)clusterSize - 1) / (ulong)clusterSize;
        if (expected != l1Size)
            throw Invalid($"Bitmap table size {l1Size} does not correspond to bitmap size and cluster size. Expected {expected}");
        var l1 = new ulong[l1Size];
        for (int i = 0; i < l1.Length; i++)
            l1[i] = BinaryPrimitives.ReadUInt64LittleEndian(data[(BitmapFeatureSize + i * 8)..]);
        return new BitmapFeature(name, (long)granularity, l1);
    }

    private static async ValueTask ReadPastEndAsZeroesAsync(BlockNode file, long offset, Memory<byte> buffer)
    {
        long inFile = Math.Clamp(file.Length - offset, 0, buffer.Length);
        buffer.Span[(int)inFile..].Clear();
        if (inFile > 0)
            await file.ReadAsync(offset, buffer[..(int)inFile]).ConfigureAwait(false);
    }

    private static ImageFormatException Invalid(FormattableString message) => new(message.ToString(CultureInfo.InvariantCulture));
}
