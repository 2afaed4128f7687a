using System.Buffers.Binary;
using System.Text;

namespace Block.Qcow2.Format;

/// <summary>Writes the snapshot table: entries padded to 8 bytes, extra data kept verbatim past QEMU's 24 known bytes.</summary>
internal static class Qcow2SnapshotTable
{
    /// <summary>Bytes of extra data Block writes: vm_state_size_large, disk_size, icount.</summary>
    public const int ExtraDataSize = 24;

    /// <summary>Most snapshots QEMU allows in one image.</summary>
    public const int MaxSnapshots = 65536;

    /// <summary>The extra data of a new snapshot.</summary>
    public static byte[] NewExtraData(ulong vmStateSize, ulong diskSize, long icount)
    {
        var extra = new byte[ExtraDataSize];
        BinaryPrimitives.WriteUInt64BigEndian(extra, vmStateSize);
        BinaryPrimitives.WriteUInt64BigEndian(extra.AsSpan(8), diskSize);
        BinaryPrimitives.WriteInt64BigEndian(extra.AsSpan(16), icount);
        return extra;
    }

    /// <summary>The guest instruction counter the extra data records, or -1 if it records none.</summary>
    public static long Icount(Qcow2Snapshot s) =>
        s.ExtraData.Length >= 24 ? BinaryPrimitives.ReadInt64BigEndian(s.ExtraData.AsSpan(16)) : -1;

    /// <summary>Serialises <paramref name="snapshots"/> as the on-disk table (the last entry unpadded, as QEMU writes it).</summary>
    public static byte[] Serialize(IReadOnlyList<Qcow2Snapshot> snapshots)
    {
        var buffer = new MemoryStream();
        Span<byte> head = stackalloc byte[40];
        for (int index = 0; index < snapshots.Count; index++)
        {
            var s = snapshots[index];
            var id = Encoding.UTF8.GetBytes(s.Id);
            var name = Encoding.UTF8.GetBytes(s.Name);
            head.Clear();
            BinaryPrimitives.WriteUInt64BigEndian(head, s.L1TableOffset);
            BinaryPrimitives.WriteUInt32BigEndian(head[8..], s.L1Size);
            BinaryPrimitives.WriteUInt16BigEndian(head[12..], (ushort)id.Length);
            BinaryPrimitives.WriteUInt16BigEndian(head[14..], (ushort)name.Length);
            BinaryPrimitives.WriteUInt32BigEndian(head[16..], s.DateSeconds);
            BinaryPrimitives.WriteUInt32BigEndian(head[20..], s.DateNanoseconds);
            BinaryPrimitives.WriteUInt64BigEndian(head[24..], s.VmClockNanoseconds);
            BinaryPrimitives.WriteUInt32BigEndian(head[32..], s.VmStateSize);
            BinaryPrimitives.WriteUInt32BigEndian(head[36..], (uint)s.ExtraData.Length);
            buffer.Write(head);
            buffer.Write(s.ExtraData);
            buffer.Write(id);
            buffer.Write(name);
            // Entries start 8-byte aligned; as in QEMU, the last one is not padded (the table's size, and so the file's
            // when the table ends it, is the unpadded length).
            if (index == snapshots.Count - 1)
                break;
            int length = 40 + s.ExtraData.Length + id.Length + name.Length;
            for (int pad = ((length + 7) & ~7) - length; pad > 0; pad--)
                buffer.WriteByte(0);
        }
        return buffer.ToArray();
    }
}
