using System.Buffers.Binary;

namespace Block.Formats.Tests.Parallels;

/// <summary>Patches of Parallels image files for the tests: header fields, BAT entries, the old signature.</summary>
internal static class ParallelsImages
{
    /// <summary>Writes <paramref name="bytes"/> little-endian bytes of <paramref name="value"/> at <paramref name="offset"/>.</summary>
    public static void Patch(string image, long offset, ulong value, int bytes)
    {
        using var f = new FileStream(image, FileMode.Open, FileAccess.ReadWrite);
        f.Position = offset;
        var b = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(b, value);
        f.Write(b, 0, bytes);
    }

    /// <summary>Sets BAT entry <paramref name="index"/>.</summary>
    public static void SetBatEntry(string image, int index, uint value) => Patch(image, 64 + 4L * index, value, 4);

    /// <summary>Sets the in-use flag as a crash leaves it ("Ynot").</summary>
    public static void SetInUse(string image) => Patch(image, 44, 0x746f6e59, 4);

    /// <summary>The in-use field.</summary>
    public static uint InUse(string image)
    {
        using var f = new FileStream(image, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
        var b = new byte[48];
        f.ReadExactly(b);
        return BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(44));
    }

    /// <summary>
    /// Rewrites an image of the new signature as one of the old: <c>WithoutFreeSpace</c>, BAT entries in sectors, no
    /// data offset (it is then the BAT's end), and junk in the high half of the disk size, which the old format ignores.
    /// </summary>
    public static void ToOldSignature(string image)
    {
        var b = File.ReadAllBytes(image);
        "WithoutFreeSpace"u8.CopyTo(b);
        uint tracks = BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(28));
        uint entries = BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(32));
        for (int i = 0; i < entries; i++)
        {
            var at = b.AsSpan(64 + 4 * i);
            BinaryPrimitives.WriteUInt32LittleEndian(at, BinaryPrimitives.ReadUInt32LittleEndian(at) * tracks);
        }
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(48), 0);
        BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(40), 1);
        File.WriteAllBytes(image, b);
    }
}
