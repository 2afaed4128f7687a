using System.Buffers.Binary;
using System.Globalization;

namespace Block.Formats.Parallels;

/// <summary>
/// The Parallels header: the 64 little-endian bytes at the start of the image, in either signature, parsed from a
/// span, validated in one place, and written back by one method.
/// </summary>
/// <param name="Extended">True for the newer signature <c>WithouFreSpacExt</c> (BAT entries count clusters, the disk
/// size is 64 bits); false for <c>WithoutFreeSpace</c> (entries count sectors, the size is the low 32 bits).</param>
/// <param name="Tracks">The cluster size in 512-byte sectors (QEMU's <c>tracks</c>).</param>
/// <param name="BatEntries">The entries of the block allocation table (the catalog) after the header.</param>
/// <param name="DiskSectors">The virtual disk size in sectors.</param>
/// <param name="DataStartSectors">Where the data area starts, in sectors: the header's <c>data_off</c>, or for images
/// that leave it 0, the end of the BAT rounded up to a sector.</param>
/// <param name="ExtensionSectors">Where the Format Extension cluster is, in sectors (<c>ext_off</c>); 0 for none.</param>
internal readonly record struct ParallelsHeader(bool Extended, uint Tracks, uint BatEntries, ulong DiskSectors, uint DataStartSectors,
    ulong ExtensionSectors)
{
    /// <summary>The bytes of the header; the BAT follows it.</summary>
    public const int Size = 64;

    /// <summary>The <c>inuse</c> value of an image open for writing (or left so by a crash): "Ynot".</summary>
    public const uint InUseMagic = 0x746f6e59;

    /// <summary>QEMU's default cluster size: 1 MiB.</summary>
    public const int DefaultClusterSize = 1 << 20;

    /// <summary>QEMU's limit on <c>tracks</c>: clusters below 1 GiB, so that a cluster and its offsets stay in an int.</summary>
    public const uint MaxTracks = int.MaxValue / 513;

    /// <summary>QEMU's limit on the BAT: its bytes fit in an int.</summary>
    public const uint MaxBatEntries = int.MaxValue / 4;

    /// <summary>The geometry QEMU writes: 16 heads, 32 sectors per cylinder track.</summary>
    public const uint Heads = 16, SectorsPerCylinder = 32;

    /// <summary>Where <c>inuse</c> is in the header.</summary>
    public const int InUseAt = 44;

    private const int VersionAt = 16, HeadsAt = 20, CylindersAt = 24, TracksAt = 28, BatEntriesAt = 32;
    private const int DiskSectorsAt = 36, DataOffsetAt = 48, ExtensionOffsetAt = 56;
    private const uint Version = 2;

    private static ReadOnlySpan<byte> OldMagic => "WithoutFreeSpace"u8;

    private static ReadOnlySpan<byte> NewMagic => "WithouFreSpacExt"u8;

    /// <summary>The cluster size in bytes.</summary>
    public long ClusterSize => (long)Tracks * 512;

    /// <summary>What a BAT entry is multiplied by to give sectors: 1 for the old signature, <see cref="Tracks"/> for the new.</summary>
    public uint OffsetMultiplier => Extended ? Tracks : 1;

    /// <summary>The first byte past the BAT.</summary>
    public long BatEnd => BatEndOf(BatEntries);

    /// <summary>The first byte past a BAT of <paramref name="entries"/> entries.</summary>
    public static long BatEndOf(uint entries) => Size + 4L * entries;

    /// <summary>True if <paramref name="header"/> carries either signature and version 2, as QEMU probes.</summary>
    public static bool HasSignature(ReadOnlySpan<byte> header) =>
        header.Length >= Size && (header[..16].SequenceEqual(OldMagic) || header[..16].SequenceEqual(NewMagic))
        && BinaryPrimitives.ReadUInt32LittleEndian(header[VersionAt..]) == Version;

    /// <summary>The <c>inuse</c> field of a header.</summary>
    public static uint InUse(ReadOnlySpan<byte> header) => BinaryPrimitives.ReadUInt32LittleEndian(header[InUseAt..]);

    /// <summary>
    /// Parses and validates the header of a file of <paramref name="fileLength"/> bytes, refusing what QEMU refuses with
    /// its words, and what would put the BAT past the file's end or the data area over the BAT.
    /// </summary>
    /// <exception cref="ImageFormatException">Not a Parallels image this library opens.</exception>
    public static ParallelsHeader Parse(ReadOnlySpan<byte> header, long fileLength)
    {
        if (!HasSignature(header))
            throw new ImageFormatException("Image not in Parallels format");
        bool extended = header[..16].SequenceEqual(NewMagic);
        uint tracks = Read(header, TracksAt), entries = Read(header, BatEntriesAt);
        ulong sectors = BinaryPrimitives.ReadUInt64LittleEndian(header[DiskSectorsAt..]);
        if (!extended)
            sectors &= 0xffff_ffff;
        if (tracks == 0)
            throw new ImageFormatException("Invalid image: Zero sectors per track");
        if (tracks > MaxTracks)
            throw new ImageFormatException("Invalid image: Too big cluster", Errno.EFBIG);
        if (entries > MaxBatEntries)
            throw new ImageFormatException("Catalog too large", Errno.EFBIG);
        // Bounds QEMU does not check: the disk size fits a byte count, the BAT lies in the file (so the memory it takes
        // is bounded by the file's size), and the data area starts past the BAT and inside the file, so that no
        // cluster allocated at its end can land on the header or the BAT.
        if (sectors > long.MaxValue / 512)
            throw new ImageFormatException(string.Create(CultureInfo.InvariantCulture, $"Invalid image: disk size of {sectors} sectors is too large"), Errno.EFBIG);
        long batEnd = BatEndOf(entries);
        if (batEnd > fileLength)
        {
            throw new ImageFormatException(string.Create(CultureInfo.InvariantCulture,
                $"Invalid image: BAT of {entries} entries ends past the end of the file ({fileLength} bytes)"), Errno.EIO);
        }
        uint dataOffset = Read(header, DataOffsetAt);
        uint dataStart = dataOffset != 0 ? dataOffset : (uint)((batEnd + 511) / 512);
        if ((long)dataStart * 512 < batEnd)
        {
            throw new ImageFormatException(string.Create(CultureInfo.InvariantCulture,
                $"Invalid image: data offset of {dataOffset} sectors lies inside the BAT of {entries} entries"));
        }
        if ((long)dataStart * 512 > fileLength)
        {
            throw new ImageFormatException(string.Create(CultureInfo.InvariantCulture,
                $"Invalid image: data offset of {dataOffset} sectors lies past the end of the file ({fileLength} bytes)"));
        }
        return new ParallelsHeader(extended, tracks, entries, sectors, dataStart, BinaryPrimitives.ReadUInt64LittleEndian(header[ExtensionOffsetAt..]));
    }

    /// <summary>
    /// Writes the 64 bytes of a new image's header as <c>qemu-img create</c> does: the new signature, QEMU's geometry,
    /// <paramref name="dataOffsetSectors"/> as given, and 0 for <c>inuse</c>, flags and the extension offset.
    /// </summary>
    public static void WriteNew(Span<byte> destination, long sizeBytes, uint tracks, uint entries, uint dataOffsetSectors)
    {
        destination[..Size].Clear();
        NewMagic.CopyTo(destination);
        Write(destination, VersionAt, Version);
        Write(destination, HeadsAt, Heads);
        // QEMU stores the cylinder count in 32 bits, as it computes it: the high bits of huge disks are lost.
        Write(destination, CylindersAt, (uint)(sizeBytes / 512 / Heads / SectorsPerCylinder));
        Write(destination, TracksAt, tracks);
        Write(destination, BatEntriesAt, entries);
        BinaryPrimitives.WriteUInt64LittleEndian(destination[DiskSectorsAt..], (ulong)(sizeBytes + 511) / 512);
        Write(destination, DataOffsetAt, dataOffsetSectors);
    }

    /// <summary>Sets <c>inuse</c> in a header, leaving every other byte as it is.</summary>
    public static void WriteInUse(Span<byte> header, uint value) => Write(header, InUseAt, value);

    private static uint Read(ReadOnlySpan<byte> s, int at) => BinaryPrimitives.ReadUInt32LittleEndian(s[at..]);

    private static void Write(Span<byte> s, int at, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(s[at..], value);
}
