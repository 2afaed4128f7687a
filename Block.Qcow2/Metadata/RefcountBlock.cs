using System.Buffers.Binary;

namespace Block.Qcow2.Metadata;

/// <summary>Reads and writes refcount entries of any width (1 to 64 bits) in a refcount block's bytes.</summary>
/// <remarks>Entries of 8 bits and more are big-endian integers; narrower ones pack from the least significant bit of
/// each byte (entry i of a 1-bit block is bit i % 8 of byte i / 8).</remarks>
internal static class RefcountBlock
{
    public static ulong Get(ReadOnlySpan<byte> block, long index, int bits) => bits switch
    {
        16 => BinaryPrimitives.ReadUInt16BigEndian(block[(int)(index * 2)..]),
        8 => block[(int)index],
        32 => BinaryPrimitives.ReadUInt32BigEndian(block[(int)(index * 4)..]),
        64 => BinaryPrimitives.ReadUInt64BigEndian(block[(int)(index * 8)..]),
        _ => (ulong)((block[(int)(index * bits / 8)] >> (int)(index * bits % 8)) & ((1 << bits) - 1)),
    };

    public static void Set(Span<byte> block, long index, int bits, ulong value)
    {
        switch (bits)
        {
            case 16:
                BinaryPrimitives.WriteUInt16BigEndian(block[(int)(index * 2)..], (ushort)value);
                break;
            case 8:
                block[(int)index] = (byte)value;
                break;
            case 32:
                BinaryPrimitives.WriteUInt32BigEndian(block[(int)(index * 4)..], (uint)value);
                break;
            case 64:
                BinaryPrimitives.WriteUInt64BigEndian(block[(int)(index * 8)..], value);
                break;
            default:
                int shift = (int)(index * bits % 8);
                int mask = ((1 << bits) - 1) << shift;
                ref byte b = ref block[(int)(index * bits / 8)];
                b = (byte)((b & ~mask) | (((int)value << shift) & mask));
                break;
        }
    }
}
