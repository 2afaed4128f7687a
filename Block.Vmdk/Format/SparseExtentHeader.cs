using System.Buffers.Binary;

namespace Block.Vmdk.Format;

/// <summary>
/// The header of a hosted sparse extent (VMDK4, magic "KDMV", sector 0 of the file): sizes, the grain directory and
/// its redundant copy, where grains start, and the feature flags. All fields are little-endian.
/// </summary>
/// <param name="Version">1; 2 adds zeroed-grain entries; 3 adds changed-block tracking (QEMU opens it read-only unless compressed).</param>
/// <param name="Flags">Feature flags (<see cref="SparseExtentFlags"/>).</param>
/// <param name="CapacitySectors">The extent's size in sectors.</param>
/// <param name="GranularitySectors">Sectors per grain (128 = 64 KiB by default).</param>
/// <param name="DescriptorOffsetSectors">Where an embedded descriptor starts (sectors), 0 if none.</param>
/// <param name="DescriptorSizeSectors">The space reserved for the embedded descriptor (sectors).</param>
/// <param name="GrainTableEntries">Entries per grain table (512).</param>
/// <param name="RedundantGrainDirectorySector">Where the redundant grain directory starts (sectors).</param>
/// <param name="GrainDirectorySector">Where the grain directory starts (sectors); <see cref="GrainDirectoryAtEnd"/> when the footer has it.</param>
/// <param name="OverheadSectors">Where grain data may start (sectors): the metadata before it is preallocated.</param>
/// <param name="UncleanShutdown">Nonzero if a VMware product did not close the extent cleanly.</param>
/// <param name="CompressAlgorithm">0 none, 1 deflate (zlib stream with header).</param>
public readonly record struct SparseExtentHeader(
    uint Version,
    SparseExtentFlags Flags,
    ulong CapacitySectors,
    ulong GranularitySectors,
    ulong DescriptorOffsetSectors,
    ulong DescriptorSizeSectors,
    uint GrainTableEntries,
    ulong RedundantGrainDirectorySector,
    ulong GrainDirectorySector,
    ulong OverheadSectors,
    byte UncleanShutdown,
    ushort CompressAlgorithm)
{
    /// <summary>"KDMV" as the first four bytes of the file.</summary>
    public static ReadOnlySpan<byte> Magic => "KDMV"u8;

    /// <summary>The header's size on disk.</summary>
    public const int Size = 512;

    /// <summary>The grain directory sector value meaning "at the end of the file, in the footer" (streamOptimized as VMware writes it).</summary>
    public const ulong GrainDirectoryAtEnd = ulong.MaxValue;

    /// <summary>The compression algorithm value for deflate.</summary>
    public const ushort CompressionDeflate = 1;

    /// <summary>The most grain table entries QEMU accepts.</summary>
    public const uint MaxGrainTableEntries = 512;

    /// <summary>The largest grain QEMU accepts, in sectors (1 GiB).</summary>
    public const ulong MaxGranularitySectors = 0x200000;

    /// <summary>The most grain directory entries QEMU accepts (a 512 MiB directory).</summary>
    public const long MaxGrainDirectoryEntries = 512L * 1024 * 1024 / 4;

    /// <summary>True if grains are stored compressed.</summary>
    public bool IsCompressed => (Flags & SparseExtentFlags.CompressedGrains) != 0;

    /// <summary>True if grain table entries may be 1 (a zeroed grain).</summary>
    public bool HasZeroedGrains => (Flags & SparseExtentFlags.ZeroedGrainEntries) != 0;

    /// <summary>True if the redundant grain directory is used.</summary>
    public bool HasRedundantGrainTables => (Flags & SparseExtentFlags.RedundantGrainTable) != 0;

    /// <summary>The grain size in bytes.</summary>
    public long GrainBytes => (long)GranularitySectors * 512;

    /// <summary>Sectors one grain table covers.</summary>
    public ulong SectorsPerGrainTable => GranularitySectors * GrainTableEntries;

    /// <summary>True if <paramref name="data"/> starts with "KDMV".</summary>
    public static bool HasMagic(ReadOnlySpan<byte> data) => data.Length >= 4 && data[..4].SequenceEqual(Magic);

    /// <summary>Reads a header from the first 512 bytes of <paramref name="data"/> (which must start with the magic).</summary>
    /// <exception cref="ImageFormatException">Fewer than 512 bytes, or no "KDMV" magic.</exception>
    public static SparseExtentHeader Parse(ReadOnlySpan<byte> data)
    {
        if (data.Length < Size)
            throw new ImageFormatException($"VMDK sparse header is truncated: {data.Length} of {Size} bytes");
        if (!HasMagic(data))
            throw new ImageFormatException("VMDK sparse header has no KDMV magic at offset 0");
        return new SparseExtentHeader(
            BinaryPrimitives.ReadUInt32LittleEndian(data[4..]),
            (SparseExtentFlags)BinaryPrimitives.ReadUInt32LittleEndian(data[8..]),
            BinaryPrimitives.ReadUInt64LittleEndian(data[12..]),
            BinaryPrimitives.ReadUInt64LittleEndian(data[20..]),
            BinaryPrimitives.ReadUInt64LittleEndian(data[28..]),
            BinaryPrimitives.ReadUInt64LittleEndian(data[36..]),
            BinaryPrimitives.ReadUInt32LittleEndian(data[44..]),
            BinaryPrimitives.ReadUInt64LittleEndian(data[48..]),
            BinaryPrimitives.ReadUInt64LittleEndian(data[56..]),
            BinaryPrimitives.ReadUInt64LittleEndian(data[64..]),
            data[72],
            BinaryPrimitives.ReadUInt16LittleEndian(data[77..]));
    }

    /// <summary>Writes the header into the first 512 bytes of <paramref name="destination"/>, with the newline-detection bytes.</summary>
    public void Write(Span<byte> destination)
    {
        var d = destination[..Size];
        d.Clear();
        Magic.CopyTo(d);
        BinaryPrimitives.WriteUInt32LittleEndian(d[4..], Version);
        BinaryPrimitives.WriteUInt32LittleEndian(d[8..], (uint)Flags);
        BinaryPrimitives.WriteUInt64LittleEndian(d[12..], CapacitySectors);
        BinaryPrimitives.WriteUInt64LittleEndian(d[20..], GranularitySectors);
        BinaryPrimitives.WriteUInt64LittleEndian(d[28..], DescriptorOffsetSectors);
        BinaryPrimitives.WriteUInt64LittleEndian(d[36..], DescriptorSizeSectors);
        BinaryPrimitives.WriteUInt32LittleEndian(d[44..], GrainTableEntries);
        BinaryPrimitives.WriteUInt64LittleEndian(d[48..], RedundantGrainDirectorySector);
        BinaryPrimitives.WriteUInt64LittleEndian(d[56..], GrainDirectorySector);
        BinaryPrimitives.WriteUInt64LittleEndian(d[64..], OverheadSectors);
        d[72] = UncleanShutdown;
        // The newline-detection bytes let a reader notice a file mangled by a text-mode transfer.
        d[73] = (byte)'\n';
        d[74] = (byte)' ';
        d[75] = (byte)'\r';
        d[76] = (byte)'\n';
        BinaryPrimitives.WriteUInt16LittleEndian(d[77..], CompressAlgorithm);
    }

    /// <summary>
    /// Checks the header the way QEMU does before trusting it, and bounds what it makes the reader allocate.
    /// </summary>
    /// <param name="fileLength">The extent file's length in bytes.</param>
    /// <param name="readOnly">True if the extent is opened read-only (version 3 needs it unless compressed).</param>
    /// <returns>The number of grain directory entries.</returns>
    /// <exception cref="ImageFormatException">A field is out of range; the message names it and its value.</exception>
    public long Validate(long fileLength, bool readOnly)
    {
        if (Version > 3)
            throw new ImageFormatException($"Unsupported VMDK version {Version}", Errno.ENOTSUP);
        if (Version == 3 && !readOnly && !IsCompressed)
            throw new ImageFormatException("VMDK version 3 must be read only", Errno.EINVAL);
        if (GrainTableEntries > MaxGrainTableEntries)
            throw new ImageFormatException($"L2 table size too big: {GrainTableEntries} grain table entries at offset 44 (at most {MaxGrainTableEntries})");
        if (GranularitySectors > MaxGranularitySectors)
            throw new ImageFormatException($"Invalid granularity, image may be corrupt: {GranularitySectors} sectors per grain at offset 20 (at most {MaxGranularitySectors})");
        if (GrainTableEntries == 0 || GranularitySectors == 0)
            throw new ImageFormatException($"L1 entry size is invalid: {GrainTableEntries} grain table entries of {GranularitySectors} sectors");
        if (CapacitySectors > (ulong)(Graph.BlockNode.MaxLength / 512))
            throw new ImageFormatException($"VMDK capacity of {CapacitySectors} sectors at offset 12 is too large", Errno.EFBIG);
        ulong perTable = SectorsPerGrainTable;
        long entries = (long)((CapacitySectors + perTable - 1) / perTable);
        if (entries > MaxGrainDirectoryEntries)
            throw new ImageFormatException($"L1 size too big: {entries} grain directory entries (at most {MaxGrainDirectoryEntries})");
        if (OverheadSectors > (ulong)(long.MaxValue / 512) || fileLength < (long)OverheadSectors * 512)
            throw new ImageFormatException($"File truncated, expecting at least {OverheadSectors * 512} bytes");
        if (IsCompressed && CompressAlgorithm != CompressionDeflate)
            throw new ImageFormatException($"Unsupported VMDK compression algorithm {CompressAlgorithm} at offset 77", Errno.ENOTSUP);
        return entries;
    }
}
