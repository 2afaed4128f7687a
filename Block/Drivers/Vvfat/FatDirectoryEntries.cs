using System.Buffers.Binary;

namespace Block.Drivers.Vvfat;

/// <summary>Encodes the 32-byte entries of a FAT directory: short entries, long-name (VFAT) entries, the volume label.</summary>
internal static class FatDirectoryEntries
{
    /// <summary>Bytes of one entry.</summary>
    public const int EntryBytes = 32;

    /// <summary>Attribute of a directory.</summary>
    public const byte AttributeDirectory = 0x10;

    /// <summary>Attribute of a file (archive), as QEMU gives every file whatever its host permissions.</summary>
    public const byte AttributeArchive = 0x20;

    private const byte AttributeVolumeLabel = 0x08;
    private const byte AttributeLongName = 0x0f;
    private const int CharactersPerLongEntry = 13;

    /// <summary>How many long-name entries <paramref name="longName"/> takes (its UTF-16 units, 13 per entry).</summary>
    public static int LongEntryCount(string longName) => (longName.Length + CharactersPerLongEntry - 1) / CharactersPerLongEntry;

    /// <summary>Writes the volume label entry (attribute volume and archive, as QEMU, no times).</summary>
    public static void WriteVolumeLabel(Span<byte> entry, ReadOnlySpan<byte> label)
    {
        label.CopyTo(entry);
        entry[11] = AttributeVolumeLabel | AttributeArchive;
    }

    /// <summary>Writes a short entry.</summary>
    public static void WriteShort(Span<byte> entry, ReadOnlySpan<byte> shortName, byte attributes, in HostTimes times, uint firstCluster, uint size)
    {
        shortName.CopyTo(entry);
        entry[11] = attributes;
        BinaryPrimitives.WriteUInt16LittleEndian(entry[14..], times.ChangeTime);
        BinaryPrimitives.WriteUInt16LittleEndian(entry[16..], times.ChangeDate);
        BinaryPrimitives.WriteUInt16LittleEndian(entry[18..], times.AccessDate);
        BinaryPrimitives.WriteUInt16LittleEndian(entry[20..], (ushort)(firstCluster >> 16));
        BinaryPrimitives.WriteUInt16LittleEndian(entry[22..], times.ModifyTime);
        BinaryPrimitives.WriteUInt16LittleEndian(entry[24..], times.ModifyDate);
        BinaryPrimitives.WriteUInt16LittleEndian(entry[26..], (ushort)firstCluster);
        BinaryPrimitives.WriteUInt32LittleEndian(entry[28..], size);
    }

    /// <summary>
    /// Writes the long-name entries of <paramref name="longName"/>, last part first, into <paramref name="entries"/>
    /// (<see cref="LongEntryCount"/> entries): the name's UTF-16 units, one 0x0000 after them when they do not fill
    /// the last entry, and 0xFFFF in the rest.
    /// </summary>
    public static void WriteLong(Span<byte> entries, string longName, ReadOnlySpan<byte> shortName)
    {
        byte checksum = Checksum(shortName);
        int count = LongEntryCount(longName);
        for (int part = 0; part < count; part++)
        {
            var entry = entries.Slice((count - 1 - part) * EntryBytes, EntryBytes);
            entry[0] = (byte)((part + 1) | (part == count - 1 ? 0x40 : 0));
            entry[11] = AttributeLongName;
            entry[12] = 0;
            entry[13] = checksum;
            entry[26] = 0;
            entry[27] = 0;
            for (int i = 0; i < CharactersPerLongEntry; i++)
            {
                int index = part * CharactersPerLongEntry + i;
                ushort unit = index < longName.Length ? longName[index] : index == longName.Length ? (ushort)0 : (ushort)0xffff;
                int at = i < 5 ? 1 + i * 2 : i < 11 ? 14 + (i - 5) * 2 : 28 + (i - 11) * 2;
                BinaryPrimitives.WriteUInt16LittleEndian(entry[at..], unit);
            }
        }
    }

    /// <summary>The checksum of a short name that its long-name entries carry.</summary>
    public static byte Checksum(ReadOnlySpan<byte> shortName)
    {
        byte sum = 0;
        for (int i = 0; i < 11; i++)
            sum = (byte)(((sum & 1) << 7) + (sum >> 1) + shortName[i]);
        return sum;
    }
}
