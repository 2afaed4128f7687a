using System.Buffers.Binary;
using System.Globalization;

namespace Block.Formats.Bochs;

/// <summary>
/// The header of a Bochs "growing" redolog image (the first 512 bytes, little-endian), parsed from a span and validated
/// in one place.
/// </summary>
/// <param name="CatalogOffset">Where the catalog starts in the file (the header's size field).</param>
/// <param name="CatalogEntries">The number of catalog entries (one per extent of the disk).</param>
/// <param name="BitmapSectors">The sectors of each extent's sector bitmap, in front of its data.</param>
/// <param name="ExtentSize">The bytes of disk one catalog entry covers: a power of two, 512 B to 8 MiB.</param>
/// <param name="DiskSize">The virtual disk size in bytes (whole sectors).</param>
internal readonly record struct BochsHeader(uint CatalogOffset, uint CatalogEntries, uint BitmapSectors, uint ExtentSize, long DiskSize)
{
    /// <summary>The bytes of the header.</summary>
    public const int Size = 512;

    /// <summary>The most catalog entries QEMU accepts (a 4 MiB catalog).</summary>
    public const uint MaxCatalogEntries = 1 << 20;

    /// <summary>The largest extent QEMU accepts: 8 MiB.</summary>
    public const uint MaxExtentSize = 8 << 20;

    private const uint Version2 = 0x0002_0000, Version1 = 0x0001_0000;
    private const int MagicAt = 0, TypeAt = 32, SubtypeAt = 48, VersionAt = 64, HeaderSizeAt = 68;
    private const int CatalogAt = 72, BitmapAt = 76, ExtentAt = 80, DiskV1At = 84, DiskV2At = 88;

    /// <summary>True if <paramref name="header"/> is the header of an image QEMU opens as bochs: the three texts and a known version.</summary>
    public static bool IsBochs(ReadOnlySpan<byte> header) =>
        header.Length >= Size
        && IsText(header.Slice(MagicAt, 32), "Bochs Virtual HD Image"u8)
        && IsText(header.Slice(TypeAt, 16), "Redolog"u8)
        && IsText(header.Slice(SubtypeAt, 16), "Growing"u8)
        && Read(header, VersionAt) is Version2 or Version1;

    /// <summary>
    /// Parses and validates the header of a file of <paramref name="fileLength"/> bytes, refusing what QEMU refuses with
    /// its words, and a catalog that does not lie inside the file.
    /// </summary>
    /// <exception cref="ImageFormatException">The header is not one of a bochs image we open.</exception>
    public static BochsHeader Parse(ReadOnlySpan<byte> header, long fileLength)
    {
        if (header.Length < Size)
        {
            // A file shorter than the header reads as zeroes past its end, as QEMU reads it.
            Span<byte> padded = stackalloc byte[Size];
            padded.Clear();
            header.CopyTo(padded);
            return Parse(padded, fileLength);
        }
        if (!IsBochs(header))
            throw new ImageFormatException("Image not in Bochs format");
        ulong diskSize = BinaryPrimitives.ReadUInt64LittleEndian(header[(Read(header, VersionAt) == Version1 ? DiskV1At : DiskV2At)..]);
        // QEMU counts whole sectors: a size that is not a multiple of 512 loses its last partial sector.
        ulong sectors = diskSize / 512;
        uint catalogOffset = Read(header, HeaderSizeAt), entries = Read(header, CatalogAt);
        uint bitmapBytes = Read(header, BitmapAt), extentSize = Read(header, ExtentAt);
        if (entries > MaxCatalogEntries)
            throw new ImageFormatException("Catalog size is too large");
        if (extentSize < 512)
            throw new ImageFormatException("Extent size must be at least 512");
        if (!uint.IsPow2(extentSize))
            throw new ImageFormatException(string.Create(CultureInfo.InvariantCulture, $"Extent size {extentSize} is not a power of two"));
        if (extentSize > MaxExtentSize)
            throw new ImageFormatException(string.Create(CultureInfo.InvariantCulture, $"Extent size {extentSize} is too large"));
        ulong extentSectors = extentSize / 512;
        if (entries < (sectors + extentSectors - 1) / extentSectors)
            throw new ImageFormatException("Catalog size is too small for this disk size");
        // Beyond QEMU: the catalog must lie inside the file, which bounds what we read and keep in memory by the
        // image's own size (QEMU reads zeroes past the end, so a 512-byte file could claim a 4 MiB catalog).
        if (catalogOffset + 4L * entries > fileLength)
            throw new ImageFormatException(string.Create(CultureInfo.InvariantCulture,
                $"Invalid bochs image: catalog of {entries} entries at offset 0x{catalogOffset:x} (the header size field) ends past the end of the file ({fileLength} bytes)"));
        // QEMU's rounding, wrap of a zero bitmap size included: 1 + (size - 1) / 512 in 32 bits.
        uint bitmapSectors = 1 + unchecked(bitmapBytes - 1) / 512;
        return new BochsHeader(catalogOffset, entries, bitmapSectors, extentSize, (long)(sectors * 512));
    }

    /// <summary>Where the data area (the extents' slots) starts: right after the catalog.</summary>
    public long DataOffset => CatalogOffset + 4L * CatalogEntries;

    /// <summary>The sectors of one slot in the data area: the extent's bitmap, then its data.</summary>
    public long SlotSectors => (long)BitmapSectors + ExtentSize / 512;

    private static bool IsText(ReadOnlySpan<byte> field, ReadOnlySpan<byte> text) =>
        field.StartsWith(text) && field[text.Length] == 0;

    private static uint Read(ReadOnlySpan<byte> s, int at) => BinaryPrimitives.ReadUInt32LittleEndian(s[at..]);
}
