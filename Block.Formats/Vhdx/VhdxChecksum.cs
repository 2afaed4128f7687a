using System.Buffers.Binary;
using System.Numerics;

namespace Block.Formats.Vhdx;

/// <summary>
/// CRC-32C (Castagnoli), the checksum of every VHDX header, region table and log entry, computed with the structure's
/// own checksum field taken as zero.
/// </summary>
/// <remarks><see cref="BitOperations.Crc32C(uint, ulong)"/> uses the SSE 4.2 / ARMv8 CRC instruction where there is one.</remarks>
internal static class VhdxChecksum
{
    /// <summary>The checksum of <paramref name="data"/>, with the 4 bytes at <paramref name="checksumAt"/> taken as zero.</summary>
    public static uint Compute(ReadOnlySpan<byte> data, int checksumAt)
    {
        uint crc = Update(0xffff_ffff, data[..checksumAt]);
        crc = BitOperations.Crc32C(crc, 0u);
        return ~Update(crc, data[(checksumAt + 4)..]);
    }

    /// <summary>True if the checksum stored at <paramref name="checksumAt"/> matches <paramref name="data"/>.</summary>
    public static bool IsValid(ReadOnlySpan<byte> data, int checksumAt) =>
        BinaryPrimitives.ReadUInt32LittleEndian(data[checksumAt..]) == Compute(data, checksumAt);

    /// <summary>Stores the checksum of <paramref name="data"/> at <paramref name="checksumAt"/>.</summary>
    public static void Store(Span<byte> data, int checksumAt) =>
        BinaryPrimitives.WriteUInt32LittleEndian(data[checksumAt..], Compute(data, checksumAt));

    private static uint Update(uint crc, ReadOnlySpan<byte> data)
    {
        int i = 0;
        for (; i + 8 <= data.Length; i += 8)
            crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(data[i..]));
        for (; i < data.Length; i++)
            crc = BitOperations.Crc32C(crc, data[i]);
        return crc;
    }
}
