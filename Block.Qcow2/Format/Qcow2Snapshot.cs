using System.Buffers.Binary;
using System.Text;

namespace Block.Qcow2.Format;

/// <summary>One entry of the snapshot table: its L1 table and identity (the extra data is kept verbatim).</summary>
internal sealed record Qcow2Snapshot
{
    public required ulong L1TableOffset { get; init; }

    public required uint L1Size { get; init; }

    public required string Id { get; init; }

    public required string Name { get; init; }

    public uint DateSeconds { get; init; }

    public uint DateNanoseconds { get; init; }

    public ulong VmClockNanoseconds { get; init; }

    public uint VmStateSize { get; init; }

    public byte[] ExtraData { get; init; } = [];

    /// <summary>VM state size from the extra data when present (it overrides the 32-bit field).</summary>
    public ulong VmStateSizeLarge => ExtraData.Length >= 8 ? BinaryPrimitives.ReadUInt64BigEndian(ExtraData) : VmStateSize;

    /// <summary>Disk size at snapshot time, from the extra data, or null.</summary>
    public ulong? DiskSize => ExtraData.Length >= 16 ? BinaryPrimitives.ReadUInt64BigEndian(ExtraData.AsSpan(8)) : null;

    /// <summary>
    /// What is wrong with the snapshot's L1 table location, in <c>qemu-img check</c>'s words, or null. As in QEMU, a
    /// bad snapshot does not stop the image from opening: it is reported by check and never followed.
    /// </summary>
    public string? L1Problem(int clusterSize)
    {
        if ((ulong)L1Size * 8 > 32UL << 20)
            return $"l1_size=0x{L1Size:x}: L1 table is too large";
        if ((L1TableOffset & (ulong)(clusterSize - 1)) != 0)
            return $"l1_offset=0x{L1TableOffset:x}: L1 table is not cluster aligned";
        return null;
    }

    /// <summary>Parses <paramref name="count"/> entries from <paramref name="table"/>, bounding every size.</summary>
    /// <returns>The snapshots and the table's length in bytes.</returns>
    public static (List<Qcow2Snapshot> Snapshots, long Length) ParseTable(ReadOnlySpan<byte> table, uint count)
    {
        var list = new List<Qcow2Snapshot>((int)Math.Min(count, 1024));
        int pos = 0;
        for (uint i = 0; i < count; i++)
        {
            if (pos + 40 > table.Length)
                throw new ImageFormatException($"Snapshot table entry {i} runs past the end of the table (offset {pos})");
            var e = table[pos..];
            ulong l1Offset = BinaryPrimitives.ReadUInt64BigEndian(e);
            uint l1Size = BinaryPrimitives.ReadUInt32BigEndian(e[8..]);
            int idLength = BinaryPrimitives.ReadUInt16BigEndian(e[12..]);
            int nameLength = BinaryPrimitives.ReadUInt16BigEndian(e[14..]);
            uint extraLength = BinaryPrimitives.ReadUInt32BigEndian(e[36..]);
            if (extraLength > 1024)
                throw new ImageFormatException($"Too much extra metadata in snapshot table entry {i}");
            int length = 40 + (int)extraLength + idLength + nameLength;
            if (pos + length > table.Length)
                throw new ImageFormatException($"Snapshot table entry {i} runs past the end of the table (offset {pos})");
            int at = 40;
            var extra = e.Slice(at, (int)extraLength).ToArray();
            at += (int)extraLength;
            string id = Encoding.UTF8.GetString(e.Slice(at, idLength));
            at += idLength;
            string name = Encoding.UTF8.GetString(e.Slice(at, nameLength));
            list.Add(new Qcow2Snapshot
            {
                L1TableOffset = l1Offset,
                L1Size = l1Size,
                Id = id,
                Name = name,
                DateSeconds = BinaryPrimitives.ReadUInt32BigEndian(e[16..]),
                DateNanoseconds = BinaryPrimitives.ReadUInt32BigEndian(e[20..]),
                VmClockNanoseconds = BinaryPrimitives.ReadUInt64BigEndian(e[24..]),
                VmStateSize = BinaryPrimitives.ReadUInt32BigEndian(e[32..]),
                ExtraData = extra,
            });
            pos += (length + 7) & ~7;
        }
        return (list, pos);
    }
}
