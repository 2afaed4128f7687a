using System.Buffers.Binary;
using System.Globalization;

namespace Block.Formats.Vdi;

/// <summary>
/// The VDI header: the 512 bytes at the start of the image (a text line, then the fields of VirtualBox's version 1.1
/// header), parsed from a span, validated in one place, and written back by one method.
/// </summary>
/// <param name="ImageType">1 for dynamic images (blocks allocated on first write), 2 for static ones.</param>
/// <param name="BlockMapOffset">Where the block map starts in the file.</param>
/// <param name="DataOffset">Where block 0 of the data area starts in the file.</param>
/// <param name="DiskSize">The virtual disk size in bytes.</param>
/// <param name="BlocksInImage">The number of block map entries.</param>
/// <param name="BlocksAllocated">The number of data blocks in the file.</param>
internal readonly record struct VdiHeader(uint ImageType, uint BlockMapOffset, uint DataOffset, ulong DiskSize, uint BlocksInImage, uint BlocksAllocated)
{
    /// <summary>The bytes of the header sector.</summary>
    public const int Size = 512;

    /// <summary>The only block size QEMU (and VirtualBox) uses: 1 MiB.</summary>
    public const int BlockSize = 1 << 20;

    /// <summary>log2 of <see cref="BlockSize"/>.</summary>
    public const int BlockShift = 20;

    /// <summary>The image type of dynamic images.</summary>
    public const uint TypeDynamic = 1;

    /// <summary>The image type of static (preallocated) images.</summary>
    public const uint TypeStatic = 2;

    /// <summary>
    /// The most blocks QEMU accepts: a block map of at most one request (2 GiB less 512 bytes) of 4-byte entries.
    /// </summary>
    public const uint MaxBlocks = 0x7fff_fe00 / 4;

    /// <summary>The largest disk QEMU creates: <see cref="MaxBlocks"/> blocks of 1 MiB.</summary>
    public const long MaxDiskSize = (long)MaxBlocks * BlockSize;

    /// <summary>The text QEMU writes at the start of its images.</summary>
    public const string QemuText = "<<< QEMU VM Virtual Disk Image >>>\n";

    private const uint Signature = 0xbeda107f;
    private const uint Version = 0x0001_0001;
    private const int SignatureAt = 0x40, VersionAt = 0x44, HeaderSizeAt = 0x48, ImageTypeAt = 0x4c;
    private const int BlockMapOffsetAt = 0x154, DataOffsetAt = 0x158, SectorSizeAt = 0x168, DiskSizeAt = 0x170;
    private const int BlockSizeAt = 0x178, BlocksInImageAt = 0x180, BlocksAllocatedAt = 0x184;

    /// <summary>Where the image's random UUID is (16 bytes); the next 16 are the last snapshot's UUID.</summary>
    public const int UuidImageAt = 0x188;

    private const int UuidLinkAt = 0x1a8, UuidParentAt = 0x1b8;

    /// <summary>True if <paramref name="header"/> carries the VDI signature.</summary>
    public static bool HasSignature(ReadOnlySpan<byte> header) =>
        header.Length >= SignatureAt + 4 && BinaryPrimitives.ReadUInt32LittleEndian(header[SignatureAt..]) == Signature;

    /// <summary>
    /// Parses and validates a header sector (of a file of <paramref name="fileLength"/> bytes), refusing what QEMU refuses with its
    /// words, and what would make the block map or data area overlap the header.
    /// </summary>
    /// <exception cref="ImageFormatException">The header is not one of a VDI image QEMU opens.</exception>
    public static VdiHeader Parse(ReadOnlySpan<byte> sector, long fileLength)
    {
        if (!HasSignature(sector))
            throw new ImageFormatException("Image not in VDI format (bad signature)");
        if (sector.Length < Size)
        {
            // A file shorter than the header reads as zeroes past its end, as QEMU reads it; the checks below refuse it.
            Span<byte> padded = stackalloc byte[Size];
            padded.Clear();
            sector.CopyTo(padded);
            return Parse(padded, fileLength);
        }
        uint version = Read(sector, VersionAt);
        uint bmap = Read(sector, BlockMapOffsetAt), data = Read(sector, DataOffsetAt);
        uint sectorSize = Read(sector, SectorSizeAt), blockSize = Read(sector, BlockSizeAt);
        ulong diskSize = BinaryPrimitives.ReadUInt64LittleEndian(sector[DiskSizeAt..]);
        uint blocks = Read(sector, BlocksInImageAt);
        // VBoxManage convert makes images of odd sizes: they are read as whole sectors, as QEMU reads them.
        if (diskSize % 512 != 0)
            diskSize = diskSize + 511 & ~511UL;

        if (version != Version)
            throw Unsupported(string.Create(CultureInfo.InvariantCulture, $"version {version >> 16}.{version & 0xffff}"));
        if (bmap % 512 != 0)
            throw Unsupported($"unaligned block map offset 0x{bmap:x}");
        if (data % 512 != 0)
            throw Unsupported($"unaligned data offset 0x{data:x}");
        if (sectorSize != 512)
            throw Unsupported(string.Create(CultureInfo.InvariantCulture, $"sector size {sectorSize} is not 512"));
        if (blockSize != BlockSize)
            throw Unsupported(string.Create(CultureInfo.InvariantCulture, $"block size {blockSize} is not {BlockSize}"));
        if (diskSize > (ulong)blocks * BlockSize)
            throw Unsupported(string.Create(CultureInfo.InvariantCulture, $"disk size {diskSize}, image bitmap has room for {(ulong)blocks * BlockSize}"));
        if (!IsNull(sector.Slice(UuidLinkAt, 16)))
            throw Unsupported("non-NULL link UUID");
        if (!IsNull(sector.Slice(UuidParentAt, 16)))
            throw Unsupported("non-NULL parent UUID");
        if (blocks > MaxBlocks)
            throw Unsupported(string.Create(CultureInfo.InvariantCulture, $"too many blocks {blocks}, max is {MaxBlocks}"));

        var header = new VdiHeader(Read(sector, ImageTypeAt), bmap, data, diskSize, blocks, Read(sector, BlocksAllocatedAt));
        // Bounds QEMU does not check: the map must lie in the file (so its size is bounded by the file's), and neither
        // the map nor the data area may overlap the header or each other, so no write can land on metadata.
        if (bmap < Size)
            throw new ImageFormatException(string.Create(CultureInfo.InvariantCulture, $"Invalid VDI image: block map offset 0x{bmap:x} lies inside the header"));
        if (bmap + header.BlockMapBytes > fileLength)
            throw new ImageFormatException(string.Create(CultureInfo.InvariantCulture,
                $"Invalid VDI image: block map of {blocks} blocks at offset 0x{bmap:x} ends past the end of the file ({fileLength} bytes)"));
        if (blocks > 0 && data < Size)
            throw new ImageFormatException(string.Create(CultureInfo.InvariantCulture, $"Invalid VDI image: data offset 0x{data:x} lies inside the header"));
        if (blocks > 0 && data < bmap + header.BlockMapBytes && (long)data + (long)blocks * BlockSize > bmap)
            throw new ImageFormatException(string.Create(CultureInfo.InvariantCulture,
                $"Invalid VDI image: data offset 0x{data:x} overlaps the block map at 0x{bmap:x}"));
        return header;
    }

    /// <summary>The bytes of the block map in the file: 4 per block, in whole sectors.</summary>
    public long BlockMapBytes => ((long)BlocksInImage * 4 + 511) & ~511L;

    /// <summary>Writes a new header sector as QEMU's <c>qemu-img create</c> does, with fresh random UUIDs.</summary>
    public void WriteNew(Span<byte> sector)
    {
        sector[..Size].Clear();
        for (int i = 0; i < QemuText.Length; i++)
            sector[i] = (byte)QemuText[i];
        Write(sector, SignatureAt, Signature);
        Write(sector, VersionAt, Version);
        Write(sector, HeaderSizeAt, 0x180);
        Write(sector, ImageTypeAt, ImageType);
        Write(sector, BlockMapOffsetAt, BlockMapOffset);
        Write(sector, DataOffsetAt, DataOffset);
        Write(sector, SectorSizeAt, 512);
        BinaryPrimitives.WriteUInt64LittleEndian(sector[DiskSizeAt..], DiskSize);
        Write(sector, BlockSizeAt, BlockSize);
        Write(sector, BlocksInImageAt, BlocksInImage);
        WriteBlocksAllocated(sector, BlocksAllocated);
        // Version 4 UUIDs, stored as QEMU stores them (the first three fields little-endian): Guid's own byte order.
        Guid.NewGuid().TryWriteBytes(sector.Slice(UuidImageAt, 16));
        Guid.NewGuid().TryWriteBytes(sector.Slice(UuidImageAt + 16, 16));
    }

    /// <summary>Sets the allocated block count in a header sector, leaving every other byte as it is.</summary>
    public static void WriteBlocksAllocated(Span<byte> sector, uint count) => Write(sector, BlocksAllocatedAt, count);

    private static uint Read(ReadOnlySpan<byte> s, int at) => BinaryPrimitives.ReadUInt32LittleEndian(s[at..]);

    private static void Write(Span<byte> s, int at, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(s[at..], value);

    private static bool IsNull(ReadOnlySpan<byte> uuid) => !uuid.ContainsAnyExcept((byte)0);

    private static ImageFormatException Unsupported(string what) => new($"unsupported VDI image ({what})", Errno.ENOTSUP);
}
