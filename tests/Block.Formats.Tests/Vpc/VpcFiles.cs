using System.Buffers.Binary;

namespace Block.Formats.Tests.Vpc;

/// <summary>Byte-level helpers for vpc tests: patching footer fields (with a fresh checksum) and comparing files.</summary>
internal static class VpcFiles
{
    /// <summary>
    /// Writes <paramref name="value"/> at <paramref name="field"/> of the footer at <paramref name="footerAt"/> (negative:
    /// the trailing one) and recomputes that footer's checksum, as a tool that wrote it would have.
    /// </summary>
    public static void PatchFooter(string image, long footerAt, int field, byte[] value, bool fixChecksum = true)
    {
        var bytes = File.ReadAllBytes(image);
        int at = (int)(footerAt < 0 ? bytes.Length - 512 : footerAt);
        value.CopyTo(bytes, at + field);
        if (fixChecksum)
        {
            BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(at + 64), 0);
            uint sum = 0;
            foreach (byte b in bytes.AsSpan(at, 512))
                sum += b;
            BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan(at + 64), ~sum);
        }
        File.WriteAllBytes(image, bytes);
    }

    /// <summary>A big-endian field value.</summary>
    public static byte[] Be32(uint value)
    {
        var b = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(b, value);
        return b;
    }

    /// <summary>A big-endian field value.</summary>
    public static byte[] Be64(ulong value)
    {
        var b = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(b, value);
        return b;
    }

    /// <summary>
    /// Asserts two vpc files are equal apart from what qemu-img draws or stamps: each footer's timestamp, UUID and the
    /// checksum over them (the copy at 0 of a dynamic image and the one at the end).
    /// </summary>
    public static void AssertSameBytesButStamps(string expected, string actual)
    {
        var a = File.ReadAllBytes(expected);
        var b = File.ReadAllBytes(actual);
        Assert.Equal(a.Length, b.Length);
        foreach (var bytes in new[] { a, b })
        {
            foreach (int footer in new[] { 0, bytes.Length - 512 })
            {
                if (footer >= 0 && bytes.AsSpan(footer).StartsWith("conectix"u8))
                {
                    bytes.AsSpan(footer + 24, 4).Clear();
                    bytes.AsSpan(footer + 64, 20).Clear();
                }
            }
        }
        int first = a.AsSpan().CommonPrefixLength(b);
        Assert.True(first == a.Length, $"the files differ first at byte 0x{first:x}");
    }
}
