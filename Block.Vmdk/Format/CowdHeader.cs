using System.Buffers.Binary;

namespace Block.Vmdk.Format;

/// <summary>
/// The header of an ESX sparse extent (VMDK3, magic "COWD", used by <c>vmfsSparse</c> disks): little-endian 32-bit
/// sizes and offsets in sectors. Its grain tables have 4096 entries.
/// </summary>
/// <param name="Version">Format version.</param>
/// <param name="Flags">Flags.</param>
/// <param name="CapacitySectors">The extent's size in sectors.</param>
/// <param name="GranularitySectors">Sectors per grain.</param>
/// <param name="GrainDirectorySector">Where the grain directory starts (sectors).</param>
/// <param name="GrainDirectoryEntries">Entries in the grain directory.</param>
/// <param name="FreeSector">The next free sector of the file.</param>
/// <param name="UncleanShutdown">Nonzero if the extent was not closed cleanly (offset 1648).</param>
public readonly record struct CowdHeader(
    uint Version,
    uint Flags,
    uint CapacitySectors,
    uint GranularitySectors,
    uint GrainDirectorySector,
    uint GrainDirectoryEntries,
    uint FreeSector,
    uint UncleanShutdown)
{
    /// <summary>"COWD" as the first four bytes of the file.</summary>
    public static ReadOnlySpan<byte> Magic => "COWD"u8;

    /// <summary>Bytes of the header that are read (the fields used; the rest is names and padding).</summary>
    public const int Size = 2048;

    /// <summary>Entries per grain table of an ESX sparse extent.</summary>
    public const uint GrainTableEntries = 4096;

    private const int UncleanShutdownOffset = 1648;

    /// <summary>True if <paramref name="data"/> starts with "COWD".</summary>
    public static bool HasMagic(ReadOnlySpan<byte> data) => data.Length >= 4 && data[..4].SequenceEqual(Magic);

    /// <summary>Reads a header from <paramref name="data"/> (at least 32 bytes, starting with the magic).</summary>
    /// <exception cref="ImageFormatException">Too short, or no "COWD" magic.</exception>
    public static CowdHeader Parse(ReadOnlySpan<byte> data)
    {
        if (data.Length < 32)
            throw new ImageFormatException($"VMDK COWD header is truncated: {data.Length} bytes");
        if (!HasMagic(data))
            throw new ImageFormatException("VMDK COWD header has no COWD magic at offset 0");
        return new CowdHeader(
            BinaryPrimitives.ReadUInt32LittleEndian(data[4..]),
            BinaryPrimitives.ReadUInt32LittleEndian(data[8..]),
            BinaryPrimitives.ReadUInt32LittleEndian(data[12..]),
            BinaryPrimitives.ReadUInt32LittleEndian(data[16..]),
            BinaryPrimitives.ReadUInt32LittleEndian(data[20..]),
            BinaryPrimitives.ReadUInt32LittleEndian(data[24..]),
            BinaryPrimitives.ReadUInt32LittleEndian(data[28..]),
            data.Length >= UncleanShutdownOffset + 4 ? BinaryPrimitives.ReadUInt32LittleEndian(data[UncleanShutdownOffset..]) : 0);
    }

    /// <summary>Writes the fields this type holds into a zeroed <see cref="Size"/>-byte header.</summary>
    public void Write(Span<byte> destination)
    {
        var d = destination[..Size];
        d.Clear();
        Magic.CopyTo(d);
        BinaryPrimitives.WriteUInt32LittleEndian(d[4..], Version);
        BinaryPrimitives.WriteUInt32LittleEndian(d[8..], Flags);
        BinaryPrimitives.WriteUInt32LittleEndian(d[12..], CapacitySectors);
        BinaryPrimitives.WriteUInt32LittleEndian(d[16..], GranularitySectors);
        BinaryPrimitives.WriteUInt32LittleEndian(d[20..], GrainDirectorySector);
        BinaryPrimitives.WriteUInt32LittleEndian(d[24..], GrainDirectoryEntries);
        BinaryPrimitives.WriteUInt32LittleEndian(d[28..], FreeSector);
        BinaryPrimitives.WriteUInt32LittleEndian(d[UncleanShutdownOffset..], UncleanShutdown);
    }

    /// <summary>Checks the header and bounds what it makes the reader allocate; returns the grain directory size used.</summary>
    /// <exception cref="ImageFormatException">A field is out of range.</exception>
    public long Validate(long fileLength)
    {
        if (GranularitySectors == 0 || GranularitySectors > SparseExtentHeader.MaxGranularitySectors)
            throw new ImageFormatException($"Invalid granularity, image may be corrupt: {GranularitySectors} sectors per grain at offset 16 of the COWD header");
        ulong perTable = (ulong)GranularitySectors * GrainTableEntries;
        long needed = (long)(((ulong)CapacitySectors + perTable - 1) / perTable);
        if (GrainDirectoryEntries < needed)
            throw new ImageFormatException($"VMDK COWD grain directory of {GrainDirectoryEntries} entries at offset 24 cannot map {CapacitySectors} sectors");
        if ((long)GrainDirectorySector * 512 + needed * 4 > fileLength)
            throw new ImageFormatException($"VMDK COWD grain directory at sector {GrainDirectorySector} ends beyond the end of the file ({fileLength} bytes)");
        return needed;
    }
}
