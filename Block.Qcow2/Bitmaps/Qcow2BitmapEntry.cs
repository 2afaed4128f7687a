using System.Buffers.Binary;
using System.Text;

namespace Block.Qcow2.Bitmaps;

/// <summary>Flags of a bitmap directory entry.</summary>
[Flags]
internal enum Qcow2BitmapFlags : uint
{
    /// <summary>No flags: a disabled bitmap whose stored copy is up to date.</summary>
    None = 0,
    /// <summary>A writer holds the bitmap in memory (or crashed holding it): the stored bits may be stale.</summary>
    InUse = 1,
    /// <summary>The bitmap is enabled: it must track every write to the disk.</summary>
    Auto = 2,
    /// <summary>Unknown extra data may be left alone (QEMU refuses extra data and treats this bit as reserved).</summary>
    ExtraDataCompatible = 4,
    /// <summary>The bits QEMU accepts; any other makes the entry break the constraints.</summary>
    Known = InUse | Auto,
}

/// <summary>
/// One entry of the bitmap directory (qcow2 spec, "Bitmap directory"): where the bitmap's table is, its flags,
/// granularity and name. 24 fixed bytes, then extra data (always empty here: QEMU refuses it), then the name, padded
/// to a multiple of 8.
/// </summary>
internal sealed record Qcow2BitmapEntry
{
    /// <summary>Bytes before the extra data and the name.</summary>
    public const int FixedSize = 24;

    /// <summary>The only bitmap type: dirty tracking.</summary>
    public const byte DirtyTrackingType = 1;

    /// <summary>Host offset of the bitmap table (cluster aligned).</summary>
    public required long TableOffset { get; init; }

    /// <summary>Entries in the bitmap table.</summary>
    public required uint TableSize { get; init; }

    /// <summary>The flags as stored.</summary>
    public required Qcow2BitmapFlags Flags { get; init; }

    /// <summary>The bitmap type (1 = dirty tracking).</summary>
    public byte Type { get; init; } = DirtyTrackingType;

    /// <summary>log2 of the bytes per bit.</summary>
    public required int GranularityBits { get; init; }

    /// <summary>The name's bytes as stored (kept verbatim, even when not UTF-8).</summary>
    public required byte[] NameBytes { get; init; }

    /// <summary>The name.</summary>
    public string Name => Encoding.UTF8.GetString(NameBytes);

    /// <summary>True if the stored copy cannot be trusted.</summary>
    public bool InUse => (Flags & Qcow2BitmapFlags.InUse) != 0;

    /// <summary>Bytes the entry takes in the directory.</summary>
    public int EntrySize => SizeFor(NameBytes.Length);

    /// <summary>Directory bytes an entry with a name of <paramref name="nameBytes"/> bytes takes.</summary>
    public static int SizeFor(int nameBytes) => (FixedSize + nameBytes + 7) & ~7;

    /// <summary>Writes the entry (and its zero padding) at the start of <paramref name="destination"/>.</summary>
    public void Write(Span<byte> destination)
    {
        destination[..EntrySize].Clear();
        BinaryPrimitives.WriteUInt64BigEndian(destination, (ulong)TableOffset);
        BinaryPrimitives.WriteUInt32BigEndian(destination[8..], TableSize);
        BinaryPrimitives.WriteUInt32BigEndian(destination[12..], (uint)Flags);
        destination[16] = Type;
        destination[17] = (byte)GranularityBits;
        BinaryPrimitives.WriteUInt16BigEndian(destination[18..], (ushort)NameBytes.Length);
        NameBytes.CopyTo(destination[FixedSize..]);
    }
}
