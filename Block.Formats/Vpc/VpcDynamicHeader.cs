using System.Buffers.Binary;
using System.Globalization;

namespace Block.Formats.Vpc;

/// <summary>
/// The dynamic disk header (1024 big-endian bytes at the footer's data offset): where the block allocation table
/// (BAT) is, how many entries it has and the block size.
/// </summary>
/// <param name="TableOffset">Where the BAT starts in the file.</param>
/// <param name="MaxTableEntries">The BAT's entries.</param>
/// <param name="BlockSize">The bytes of data per block (2 MiB as qemu-img creates them; a power of two).</param>
internal readonly record struct VpcDynamicHeader(ulong TableOffset, uint MaxTableEntries, uint BlockSize)
{
    /// <summary>The header's size.</summary>
    public const int Size = 1024;

    /// <summary>The block size qemu-img creates: 2 MiB.</summary>
    public const uint DefaultBlockSize = 2 << 20;

    private const ulong Cookie = 0x6378_7370_6172_7365; // "cxsparse"
    private const int DataOffsetAt = 8, TableOffsetAt = 16, VersionAt = 24, MaxTableEntriesAt = 28, BlockSizeAt = 32, ChecksumAt = 36;

    /// <summary>
    /// Parses and validates the header of a disk of <paramref name="diskSectors"/> sectors, refusing what QEMU refuses
    /// with its words. The checksum is not checked, as QEMU does not check it.
    /// </summary>
    /// <exception cref="ImageFormatException">The header is not one QEMU opens.</exception>
    public static VpcDynamicHeader Parse(ReadOnlySpan<byte> header, long diskSectors)
    {
        if (BinaryPrimitives.ReadUInt64BigEndian(header) != Cookie)
            throw new ImageFormatException("Invalid header magic");
        uint blockSize = BinaryPrimitives.ReadUInt32BigEndian(header[BlockSizeAt..]);
        if (!uint.IsPow2(blockSize) || blockSize < 512)
            throw new ImageFormatException(string.Create(CultureInfo.InvariantCulture, $"Invalid block size {blockSize}"));
        uint entries = BinaryPrimitives.ReadUInt32BigEndian(header[MaxTableEntriesAt..]);
        if (diskSectors * 512 / blockSize > uint.MaxValue)
            throw new ImageFormatException("Too many blocks");
        if ((ulong)entries * blockSize < (ulong)diskSectors * 512)
            throw new ImageFormatException("Page table too small");
        if (entries > int.MaxValue / 4)
            throw new ImageFormatException(string.Create(CultureInfo.InvariantCulture, $"Max Table Entries too large ({(int)entries})"));
        return new(BinaryPrimitives.ReadUInt64BigEndian(header[TableOffsetAt..]), entries, blockSize);
    }

    /// <summary>The bytes of the per-block sector bitmap: one bit per sector, in whole sectors (512 for 2 MiB blocks).</summary>
    public int BitmapBytes => (int)((BlockSize / (8 * 512) + 511) & ~511u);

    /// <summary>The BAT's bytes in the file: four per entry.</summary>
    public long TableBytes => (long)MaxTableEntries * 4;

    /// <summary>Writes the header qemu-img create writes: no parent, no locators, and its checksum.</summary>
    public void WriteNew(Span<byte> header)
    {
        header[..Size].Clear();
        BinaryPrimitives.WriteUInt64BigEndian(header, Cookie);
        BinaryPrimitives.WriteUInt64BigEndian(header[DataOffsetAt..], ulong.MaxValue);
        BinaryPrimitives.WriteUInt64BigEndian(header[TableOffsetAt..], TableOffset);
        BinaryPrimitives.WriteUInt32BigEndian(header[VersionAt..], 0x0001_0000);
        BinaryPrimitives.WriteUInt32BigEndian(header[MaxTableEntriesAt..], MaxTableEntries);
        BinaryPrimitives.WriteUInt32BigEndian(header[BlockSizeAt..], BlockSize);
        BinaryPrimitives.WriteUInt32BigEndian(header[ChecksumAt..], VpcFooter.Checksum(header[..Size], ChecksumAt));
    }
}
