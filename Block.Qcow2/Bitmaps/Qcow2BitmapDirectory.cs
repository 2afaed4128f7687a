using System.Buffers.Binary;

namespace Block.Qcow2.Bitmaps;

/// <summary>
/// The bitmaps header extension and the bitmap directory it points at: parsing with QEMU's checks and messages,
/// and writing. Also the limits and table-entry rules every bitmap obeys.
/// </summary>
/// <remarks>
/// QEMU's limits, which Block enforces the same way so that every image one writes the other opens: at most 65535
/// bitmaps, a directory of at most 1024 × 65535 bytes, granularities of 2^9 to 2^31 bytes, names of at most 1023
/// bytes, bitmap tables of at most 2^27 entries and bitmap data of at most 512 MiB (2^32 bits).
/// </remarks>
internal static class Qcow2BitmapDirectory
{
    /// <summary>Length of the extension's data.</summary>
    public const int ExtensionLength = 24;

    /// <summary>Most bitmaps per image.</summary>
    public const int MaxBitmaps = 65535;

    /// <summary>Largest directory.</summary>
    public const long MaxDirectorySize = 1024L * MaxBitmaps;

    /// <summary>Largest bitmap table, in entries.</summary>
    public const long MaxTableSize = 0x8000000;

    /// <summary>Largest bitmap data, in bytes (the in-memory size QEMU allows).</summary>
    public const long MaxDataSize = 0x20000000;

    /// <summary>Smallest granularity, as log2.</summary>
    public const int MinGranularityBits = 9;

    /// <summary>Largest granularity, as log2.</summary>
    public const int MaxGranularityBits = 31;

    /// <summary>Longest name, in bytes.</summary>
    public const int MaxNameSize = 1023;

    /// <summary>Bits 9–55 of a bitmap table entry: the data cluster's offset.</summary>
    public const ulong TableOffsetMask = 0x00fffffffffffe00UL;

    /// <summary>Bit 0 of a bitmap table entry without an offset: the cluster reads as all ones.</summary>
    public const ulong AllOnes = 1;

    /// <summary>The reserved bits of a bitmap table entry (1–8 and 56–63).</summary>
    private const ulong TableReservedMask = 0xff000000000001feUL;

    /// <summary>Reads the extension's fields, refusing what QEMU refuses with its messages.</summary>
    /// <exception cref="ImageFormatException">A reserved field, a bitmap count, a directory offset or size QEMU refuses.</exception>
    public static (uint Count, long Size, long Offset) ParseExtension(ReadOnlySpan<byte> extension, int clusterSize)
    {
        if (extension.Length != ExtensionLength)
            throw new ImageFormatException("bitmaps_ext: Invalid extension length");
        uint count = BinaryPrimitives.ReadUInt32BigEndian(extension);
        uint reserved = BinaryPrimitives.ReadUInt32BigEndian(extension[4..]);
        ulong size = BinaryPrimitives.ReadUInt64BigEndian(extension[8..]);
        ulong offset = BinaryPrimitives.ReadUInt64BigEndian(extension[16..]);
        if (reserved != 0)
            throw new ImageFormatException("bitmaps_ext: Reserved field is not zero");
        if (count > MaxBitmaps)
            throw new ImageFormatException($"bitmaps_ext: Image has {count} bitmaps, exceeding the QEMU supported maximum of {MaxBitmaps}");
        if (count == 0)
            throw new ImageFormatException("found bitmaps extension with zero bitmaps");
        if ((offset & (ulong)(clusterSize - 1)) != 0 || offset > long.MaxValue)
            throw new ImageFormatException("bitmaps_ext: invalid bitmap directory offset");
        if (size > MaxDirectorySize)
            throw new ImageFormatException($"bitmaps_ext: bitmap directory size ({size}) exceeds the maximum supported size ({MaxDirectorySize})");
        return (count, (long)size, (long)offset);
    }

    /// <summary>The extension's 24 bytes for a directory of <paramref name="count"/> entries.</summary>
    public static byte[] WriteExtension(int count, long size, long offset)
    {
        var ext = new byte[ExtensionLength];
        BinaryPrimitives.WriteUInt32BigEndian(ext, (uint)count);
        BinaryPrimitives.WriteUInt64BigEndian(ext.AsSpan(8), (ulong)size);
        BinaryPrimitives.WriteUInt64BigEndian(ext.AsSpan(16), (ulong)offset);
        return ext;
    }

    /// <summary>
    /// Parses the directory: entries that fit, no extra data, exactly <paramref name="count"/> of them, each within
    /// QEMU's constraints for a disk of <paramref name="diskSize"/> bytes.
    /// </summary>
    /// <exception cref="ImageFormatException">QEMU's messages: "Broken bitmap directory", "Bitmap extra data is not
    /// supported", "More/Less bitmaps found than specified in header extension", "Bitmap 'x' doesn't satisfy the constraints".</exception>
    public static List<Qcow2BitmapEntry> Parse(ReadOnlySpan<byte> directory, uint count, int clusterSize, long diskSize)
    {
        var entries = new List<Qcow2BitmapEntry>();
        int pos = 0;
        while (pos < directory.Length)
        {
            var rest = directory[pos..];
            if (rest.Length < Qcow2BitmapEntry.FixedSize)
                throw new ImageFormatException("Broken bitmap directory");
            uint extra = BinaryPrimitives.ReadUInt32BigEndian(rest[20..]);
            int nameSize = BinaryPrimitives.ReadUInt16BigEndian(rest[18..]);
            long size = (Qcow2BitmapEntry.FixedSize + (long)extra + nameSize + 7) & ~7L;
            if (size > rest.Length)
                throw new ImageFormatException("Broken bitmap directory");
            if (extra != 0)
                throw new ImageFormatException("Bitmap extra data is not supported");
            if (entries.Count == count)
                throw new ImageFormatException("More bitmaps found than specified in header extension");
            var entry = new Qcow2BitmapEntry
            {
                TableOffset = (long)BinaryPrimitives.ReadUInt64BigEndian(rest),
                TableSize = BinaryPrimitives.ReadUInt32BigEndian(rest[8..]),
                Flags = (Qcow2BitmapFlags)BinaryPrimitives.ReadUInt32BigEndian(rest[12..]),
                Type = rest[16],
                GranularityBits = rest[17],
                NameBytes = rest.Slice(Qcow2BitmapEntry.FixedSize, nameSize).ToArray(),
            };
            if (!SatisfiesConstraints(entry, clusterSize, diskSize))
                throw new ImageFormatException($"Bitmap '{entry.Name}' doesn't satisfy the constraints");
            entries.Add(entry);
            pos += (int)size;
        }
        if (entries.Count < count)
            throw new ImageFormatException("Less bitmaps found than specified in header extension");
        return entries;
    }

    /// <summary>The directory's bytes for <paramref name="entries"/>.</summary>
    public static byte[] Write(IReadOnlyList<Qcow2BitmapEntry> entries)
    {
        var bytes = new byte[entries.Sum(e => (long)e.EntrySize)];
        int pos = 0;
        foreach (var e in entries)
        {
            e.Write(bytes.AsSpan(pos));
            pos += e.EntrySize;
        }
        return bytes;
    }

    /// <summary>Bytes of bitmap data for a disk of <paramref name="diskSize"/> bytes at 2^<paramref name="granularityBits"/> bytes per bit.</summary>
    public static long DataSize(long diskSize, int granularityBits)
    {
        long bits = (long)(((ulong)diskSize + (1UL << granularityBits) - 1) >> granularityBits);
        return (bits + 7) >> 3;
    }

    /// <summary>Bitmap table entries needed for <paramref name="dataSize"/> bytes of bitmap data.</summary>
    public static long TableSizeFor(long dataSize, int clusterSize) => (dataSize + clusterSize - 1) / clusterSize;

    /// <summary>The reason a new bitmap of this granularity and name could not be stored, in QEMU's words, or null.</summary>
    public static string? ConstraintViolation(int granularityBits, int nameBytes, long diskSize, int clusterSize)
    {
        if (granularityBits > MaxGranularityBits)
            return $"Granularity exceeds maximum ({1L << MaxGranularityBits} bytes)";
        if (granularityBits < MinGranularityBits)
            return $"Granularity is under minimum ({1L << MinGranularityBits} bytes)";
        long data = DataSize(diskSize, granularityBits);
        if (data > MaxDataSize || TableSizeFor(data, clusterSize) > MaxTableSize)
            return "Too much space will be occupied by the bitmap. Use larger granularity";
        if (nameBytes > MaxNameSize)
            return $"Name length exceeds maximum ({MaxNameSize} characters)";
        return null;
    }

    /// <summary>
    /// QEMU's constraints on a stored entry: a known type and flags, a granularity it supports, a cluster-aligned
    /// table big enough for the disk, data within the size limit, a name of at most 1023 bytes.
    /// </summary>
    public static bool SatisfiesConstraints(Qcow2BitmapEntry e, int clusterSize, long diskSize)
    {
        if (e.Type != Qcow2BitmapEntry.DirtyTrackingType || (e.Flags & ~Qcow2BitmapFlags.Known) != 0
            || e.GranularityBits < MinGranularityBits || e.GranularityBits > MaxGranularityBits
            || e.NameBytes.Length > MaxNameSize)
            return false;
        if (e.TableOffset == 0 || (e.TableOffset & (clusterSize - 1)) != 0 || e.TableSize > MaxTableSize)
            return false;
        long data = DataSize(diskSize, e.GranularityBits);
        return data <= MaxDataSize && data <= (long)e.TableSize * clusterSize;
    }

    /// <summary>True if a bitmap table entry is well formed: no reserved bits, an aligned offset, and bit 0 only without one.</summary>
    public static bool IsValidTableEntry(ulong entry, int clusterSize)
    {
        ulong offset = entry & TableOffsetMask;
        if ((entry & TableReservedMask) != 0 || (offset & (ulong)(clusterSize - 1)) != 0)
            return false;
        return offset == 0 || (entry & AllOnes) == 0;
    }
}
