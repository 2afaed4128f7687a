using System.Buffers.Binary;

namespace Block.Qcow2.Tests;

/// <summary>Byte-level access to an image file, as iotests' <c>poke_file</c> and <c>peek_file_be</c>.</summary>
internal static class ImageFile
{
    /// <summary>Header field offsets (qcow2 spec).</summary>
    public const int Version = 4, BackingFileOffset = 8, BackingFileSize = 16, ClusterBits = 20, Size = 24, CryptMethod = 32,
        L1Size = 36, L1TableOffset = 40, RefcountTableOffset = 48, RefcountTableClusters = 56, NbSnapshots = 60,
        SnapshotsOffset = 64, IncompatibleFeatures = 72, CompatibleFeatures = 80, AutoclearFeatures = 88, RefcountOrder = 96,
        HeaderLength = 100;

    public static void Poke(string path, long offset, ReadOnlySpan<byte> bytes)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.Write);
        f.Position = offset;
        f.Write(bytes);
    }

    public static void PokeHex(string path, long offset, string hex) => Poke(path, offset, Convert.FromHexString(hex));

    public static void PokeBe64(string path, long offset, ulong value)
    {
        Span<byte> b = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(b, value);
        Poke(path, offset, b);
    }

    public static void PokeBe32(string path, long offset, uint value)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(b, value);
        Poke(path, offset, b);
    }

    public static void PokeBe16(string path, long offset, ushort value)
    {
        Span<byte> b = stackalloc byte[2];
        BinaryPrimitives.WriteUInt16BigEndian(b, value);
        Poke(path, offset, b);
    }

    public static byte[] Peek(string path, long offset, int length)
    {
        using var f = new FileStream(path, FileMode.Open, FileAccess.Read);
        f.Position = offset;
        var b = new byte[length];
        f.ReadExactly(b);
        return b;
    }

    public static ulong PeekBe64(string path, long offset) => BinaryPrimitives.ReadUInt64BigEndian(Peek(path, offset, 8));

    public static uint PeekBe32(string path, long offset) => BinaryPrimitives.ReadUInt32BigEndian(Peek(path, offset, 4));

    /// <summary>Offset of the body of header extension <paramref name="type"/>, or -1.</summary>
    public static long FindExtension(string path, uint type)
    {
        uint version = PeekBe32(path, Version);
        long pos = version >= 3 ? PeekBe32(path, HeaderLength) : 72;
        var cluster = Peek(path, 0, 1 << (int)PeekBe32(path, ClusterBits));
        while (pos + 8 <= cluster.Length)
        {
            uint t = BinaryPrimitives.ReadUInt32BigEndian(cluster.AsSpan((int)pos));
            uint length = BinaryPrimitives.ReadUInt32BigEndian(cluster.AsSpan((int)pos + 4));
            if (t == 0)
                return -1;
            if (t == type)
                return pos + 8;
            pos += 8 + ((length + 7) & ~7u);
        }
        return -1;
    }
}
