using System.Buffers.Binary;

namespace Block.Formats.Vhdx;

/// <summary>
/// One of the two 4 KiB VHDX headers (at 64 KiB and 128 KiB): the sequence number that picks the current one, the
/// write GUIDs, and where the log is and whether it holds entries to replay.
/// </summary>
/// <param name="SequenceNumber">The header with the higher number is the current one.</param>
/// <param name="FileWriteGuid">Changed on the first update of each read/write session.</param>
/// <param name="DataWriteGuid">Changed before the first guest-visible write of each session.</param>
/// <param name="LogGuid">Not empty while the log holds entries that must be replayed.</param>
/// <param name="LogVersion">Must be 0.</param>
/// <param name="Version">Must be 1.</param>
/// <param name="LogLength">The log's bytes, a multiple of 1 MiB.</param>
/// <param name="LogOffset">Where the log starts in the file, a multiple of 1 MiB.</param>
internal readonly record struct VhdxHeader(ulong SequenceNumber, Guid FileWriteGuid, Guid DataWriteGuid, Guid LogGuid,
    ushort LogVersion, ushort Version, uint LogLength, ulong LogOffset)
{
    /// <summary>The bytes of a header.</summary>
    public const int Size = 4096;

    /// <summary>Where the first header is.</summary>
    public const long Offset1 = 64 * 1024;

    /// <summary>Where the second header is.</summary>
    public const long Offset2 = 128 * 1024;

    private const uint Signature = 0x64616568; // "head"

    /// <summary>The header in <paramref name="block"/>, or null if its signature, checksum or version is wrong.</summary>
    public static VhdxHeader? TryParse(ReadOnlySpan<byte> block)
    {
        if (block.Length < Size || BinaryPrimitives.ReadUInt32LittleEndian(block) != Signature || !VhdxChecksum.IsValid(block[..Size], 4))
            return null;
        var h = new VhdxHeader(
            BinaryPrimitives.ReadUInt64LittleEndian(block[8..]),
            new Guid(block.Slice(16, 16)), new Guid(block.Slice(32, 16)), new Guid(block.Slice(48, 16)),
            BinaryPrimitives.ReadUInt16LittleEndian(block[64..]), BinaryPrimitives.ReadUInt16LittleEndian(block[66..]),
            BinaryPrimitives.ReadUInt32LittleEndian(block[68..]), BinaryPrimitives.ReadUInt64LittleEndian(block[72..]));
        return h.Version == 1 ? h : null;
    }

    /// <summary>Writes the header, with its checksum, into the 4 KiB <paramref name="block"/> (the reserved bytes zeroed).</summary>
    public void WriteTo(Span<byte> block)
    {
        block[..Size].Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(block, Signature);
        BinaryPrimitives.WriteUInt64LittleEndian(block[8..], SequenceNumber);
        FileWriteGuid.TryWriteBytes(block.Slice(16, 16));
        DataWriteGuid.TryWriteBytes(block.Slice(32, 16));
        LogGuid.TryWriteBytes(block.Slice(48, 16));
        BinaryPrimitives.WriteUInt16LittleEndian(block[64..], LogVersion);
        BinaryPrimitives.WriteUInt16LittleEndian(block[66..], Version);
        BinaryPrimitives.WriteUInt32LittleEndian(block[68..], LogLength);
        BinaryPrimitives.WriteUInt64LittleEndian(block[72..], LogOffset);
        VhdxChecksum.Store(block[..Size], 4);
    }
}
