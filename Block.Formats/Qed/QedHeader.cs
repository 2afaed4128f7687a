using System.Buffers.Binary;
using System.Globalization;
using System.Numerics;
using System.Text;

namespace Block.Formats.Qed;

/// <summary>
/// The QED header: the 64 little-endian bytes at the start of the image, and the backing file name the header
/// clusters hold after them; parsed from a span, validated in one place, and written back by one method.
/// </summary>
internal sealed class QedHeader
{
    /// <summary>The fixed part of the header.</summary>
    public const int Size = 64;

    /// <summary>Feature bit: the image has a backing file.</summary>
    public const ulong FeatureBackingFile = 1;

    /// <summary>Feature bit: the image may hold metadata a crash left inconsistent; check it before trusting it.</summary>
    public const ulong FeatureNeedCheck = 2;

    /// <summary>Feature bit: the backing file is raw and must not be probed.</summary>
    public const ulong FeatureBackingFormatNoProbe = 4;

    /// <summary>The feature bits this implementation (and QEMU) knows.</summary>
    public const ulong KnownFeatures = FeatureBackingFile | FeatureNeedCheck | FeatureBackingFormatNoProbe;

    /// <summary>The smallest and largest cluster sizes QEMU accepts.</summary>
    public const uint MinClusterSize = 4096, MaxClusterSize = 64u << 20;

    /// <summary>The largest table size (in clusters) QEMU accepts.</summary>
    public const uint MaxTableSize = 16;

    /// <summary>QEMU's defaults: 64 KiB clusters, tables of 4 clusters.</summary>
    public const uint DefaultClusterSize = 64 * 1024, DefaultTableSize = 4;

    private const uint Magic = 0x00444551; // "QED\0" read as a little-endian u32

    /// <summary>Bytes per cluster (a power of two between 4 KiB and 64 MiB).</summary>
    public uint ClusterSize { get; init; }

    /// <summary>Clusters per L1 or L2 table (a power of two, 1 to 16).</summary>
    public uint TableSize { get; init; }

    /// <summary>Clusters the header occupies (it holds the backing file name too).</summary>
    public uint HeaderSize { get; init; }

    /// <summary>Incompatible features: an unknown one refuses the open.</summary>
    public ulong Features { get; set; }

    /// <summary>Compatible features (none are defined).</summary>
    public ulong CompatFeatures { get; init; }

    /// <summary>Features a writer that does not know them clears (none are defined).</summary>
    public ulong AutoclearFeatures { get; set; }

    /// <summary>Where the L1 table starts in the file.</summary>
    public ulong L1TableOffset { get; init; }

    /// <summary>The virtual disk size in bytes (a multiple of 512).</summary>
    public ulong ImageSize { get; set; }

    /// <summary>Where the backing file name starts in the file (inside the header clusters).</summary>
    public uint BackingFilenameOffset { get; init; }

    /// <summary>The length of the backing file name in bytes (no terminator).</summary>
    public uint BackingFilenameSize { get; init; }

    /// <summary>The backing file name, when <see cref="FeatureBackingFile"/> is set.</summary>
    public string? BackingFilename { get; private set; }

    /// <summary>Bytes of one L1 or L2 table.</summary>
    public long TableBytes => (long)TableSize * ClusterSize;

    /// <summary>u64 entries in one table.</summary>
    public int TableEntries => (int)(TableBytes / 8);

    /// <summary>The largest image these cluster and table sizes address: entries² clusters.</summary>
    public ulong MaxImageSize => MaxImageSizeFor(ClusterSize, TableSize);

    /// <summary>The largest image <paramref name="clusterSize"/> and <paramref name="tableSize"/> address.</summary>
    public static ulong MaxImageSizeFor(uint clusterSize, uint tableSize)
    {
        ulong entries = (ulong)clusterSize * tableSize / 8;
        return entries * entries * clusterSize;
    }

    /// <summary>True if <paramref name="header"/> starts with the QED magic.</summary>
    public static bool HasMagic(ReadOnlySpan<byte> header) =>
        header.Length >= 4 && BinaryPrimitives.ReadUInt32LittleEndian(header) == Magic;

    /// <summary>True for a cluster size QEMU accepts.</summary>
    public static bool IsValidClusterSize(ulong size) => size is >= MinClusterSize and <= MaxClusterSize && BitOperations.IsPow2(size);

    /// <summary>True for a table size QEMU accepts.</summary>
    public static bool IsValidTableSize(ulong size) => size is >= 1 and <= MaxTableSize && BitOperations.IsPow2(size);

    /// <summary>
    /// Parses and validates the fixed header from <paramref name="header"/> (the header clusters as far as the file
    /// holds them) of a file of <paramref name="fileLength"/> bytes, refusing what QEMU refuses with its words.
    /// </summary>
    /// <exception cref="ImageFormatException">Not a QED image QEMU opens.</exception>
    public static QedHeader Parse(ReadOnlySpan<byte> header, long fileLength)
    {
        if (!HasMagic(header) || header.Length < Size)
            throw new ImageFormatException("Image not in QED format");
        uint clusterSize = Read32(header, 4), tableSize = Read32(header, 8), headerSize = Read32(header, 12);
        ulong features = Read64(header, 16);
        if ((features & ~KnownFeatures) != 0)
            throw new ImageFormatException(string.Create(CultureInfo.InvariantCulture, $"Unsupported QED features: {features & ~KnownFeatures:x}"), Errno.ENOTSUP);
        if (!IsValidClusterSize(clusterSize))
            throw new ImageFormatException("QED cluster size is invalid");
        if (!IsValidTableSize(tableSize))
            throw new ImageFormatException("QED table size is invalid");
        var parsed = new QedHeader
        {
            ClusterSize = clusterSize,
            TableSize = tableSize,
            HeaderSize = headerSize,
            Features = features,
            CompatFeatures = Read64(header, 24),
            AutoclearFeatures = Read64(header, 32),
            L1TableOffset = Read64(header, 40),
            ImageSize = Read64(header, 48),
            BackingFilenameOffset = Read32(header, 56),
            BackingFilenameSize = Read32(header, 60),
        };
        if (parsed.ImageSize % 512 != 0 || parsed.ImageSize > parsed.MaxImageSize)
            throw new ImageFormatException("QED image size is invalid");
        // The L1 table lies after the header clusters, cluster-aligned, and wholly inside the file: the table is read
        // into memory whole, so a table past the end would be an allocation the file does not back.
        ulong headerBytes = (ulong)headerSize * clusterSize;
        ulong l1 = parsed.L1TableOffset;
        // QEMU refuses tables of one cluster (its table check asks for a last cluster past the first), so images made
        // with table_size=1 open in neither tool.
        if (tableSize == 1 || headerSize == 0 || headerSize > int.MaxValue / clusterSize || l1 % clusterSize != 0 || l1 < headerBytes
            || l1 > (ulong)fileLength || (ulong)fileLength - l1 < (ulong)parsed.TableBytes)
        {
            throw new ImageFormatException("QED table offset is invalid");
        }
        if ((features & FeatureBackingFile) != 0)
        {
            ulong end = (ulong)parsed.BackingFilenameOffset + parsed.BackingFilenameSize;
            if (end > headerBytes || end > (ulong)header.Length)
                throw new ImageFormatException("QED backing filename offset is invalid");
            // QEMU takes the name as a C string: it ends at the first NUL inside the given size (an offset of 0 names
            // the header's own "QED\0" magic, so the name is "QED").
            var name = header.Slice((int)parsed.BackingFilenameOffset, (int)parsed.BackingFilenameSize);
            int nul = name.IndexOf((byte)0);
            parsed.BackingFilename = Encoding.UTF8.GetString(nul >= 0 ? name[..nul] : name);
        }
        return parsed;
    }

    /// <summary>Writes the fixed 64 bytes into <paramref name="destination"/>; the backing name, if any, is written by the caller.</summary>
    public void Write(Span<byte> destination)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(destination, Magic);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[4..], ClusterSize);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[8..], TableSize);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[12..], HeaderSize);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[16..], Features);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[24..], CompatFeatures);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[32..], AutoclearFeatures);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[40..], L1TableOffset);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[48..], ImageSize);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[56..], BackingFilenameOffset);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[60..], BackingFilenameSize);
    }

    private static uint Read32(ReadOnlySpan<byte> b, int at) => BinaryPrimitives.ReadUInt32LittleEndian(b[at..]);

    private static ulong Read64(ReadOnlySpan<byte> b, int at) => BinaryPrimitives.ReadUInt64LittleEndian(b[at..]);
}
