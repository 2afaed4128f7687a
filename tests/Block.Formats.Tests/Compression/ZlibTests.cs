using System.IO.Compression;
using System.Runtime.InteropServices;
using Block.Formats.Compression;
using FsCheck;
using FsCheck.Fluent;

namespace Block.Formats.Tests.Compression;

/// <summary>
/// The compressed-block check of cloop and dmg, which inflates raw deflate data and checks zlib's header and trailer
/// itself, against the system zlib's own one-shot <c>uncompress2</c> on the same bytes: the same verdict on every
/// block, intact or damaged, and the same bytes when both accept it.
/// </summary>
public unsafe class ZlibTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(31)]
    [InlineData(32)]
    [InlineData(5535)]
    [InlineData(5536)]
    [InlineData(5537)]
    [InlineData(65536)]
    [InlineData(1 << 20)]
    public void Adler32_equals_zlibs_for_bytes_that_stress_the_sums(int length)
    {
        foreach (byte fill in new byte[] { 0x00, 0xff, 0x80 })
        {
            var data = new byte[length];
            Array.Fill(data, fill);
            foreach (int step in Steps())
                Assert.Equal(SystemAdler32(1, data), Adler32.Compute(data, 1, step));
        }
        var random = new byte[length];
        new Random(length).NextBytes(random);
        foreach (int step in Steps())
            Assert.Equal(SystemAdler32(1, random), Adler32.Compute(random, 1, step));
    }

    /// <summary>Every step width this processor can run: each has its own loop.</summary>
    private static IEnumerable<int> Steps() => new[] { 1, 16, 32 }.Where(step => step <= Adler32.WidestStep);

    [Fact]
    public void Adler32_equals_zlibs_for_random_data_and_starting_values()
    {
        var property = Prop.ForAll(
            Gen.Choose(0, 70_000).Zip(Gen.Choose(0, int.MaxValue)).Zip(Gen.Choose(0, 65520)).ToArbitrary(),
            input =>
            {
                var ((length, seed), s1) = input;
                var data = new byte[length];
                new Random(seed).NextBytes(data);
                uint start = (uint)(seed % 65521) << 16 | (uint)s1;
                uint expected = SystemAdler32(start, data);
                return Steps().All(step => Adler32.Compute(data, start, step) == expected);
            });
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(200), property);
    }

    [Fact]
    public void A_damaged_block_gets_the_verdict_zlib_gives()
    {
        var damages = Gen.Elements(Damage.None, Damage.FlipByte, Damage.Truncate, Damage.AppendGarbage, Damage.DropTrailer,
            Damage.SetDictionaryFlag, Damage.WrongLength);
        var property = Prop.ForAll(
            Gen.Choose(0, 40_000).Zip(Gen.Choose(0, int.MaxValue)).Zip(damages).Zip(Gen.Choose(0, 9)).ToArbitrary(),
            input =>
            {
                var (((length, seed), damage), padding) = input;
                var rng = new Random(seed);
                var data = new byte[length];
                if (seed % 2 == 0)
                    rng.NextBytes(data);
                else
                    for (int i = 0; i < length; i++)
                        data[i] = (byte)(i / 100 % 7);
                var block = Compress(data, seed % 3 == 0 ? CompressionLevel.NoCompression : CompressionLevel.SmallestSize);
                int expectedLength = length;
                switch (damage)
                {
                    case Damage.FlipByte:
                        block[rng.Next(block.Length)] ^= (byte)(1 << rng.Next(8));
                        break;
                    case Damage.Truncate:
                        block = block[..rng.Next(block.Length)];
                        break;
                    case Damage.AppendGarbage:
                        block = [.. block, .. Enumerable.Range(0, rng.Next(1, 64)).Select(i => (byte)rng.Next(256))];
                        break;
                    case Damage.DropTrailer:
                        block = block[..^rng.Next(1, 5)];
                        break;
                    case Damage.SetDictionaryFlag:
                        int flg = block[1] & 0xc0 | 0x20;
                        block[1] = (byte)(flg | (31 - (block[0] << 8 | flg) % 31) % 31);
                        break;
                    case Damage.WrongLength:
                        expectedLength += rng.Next(2) == 0 ? 1 : -Math.Min(1, length);
                        break;
                }
                var ours = new byte[expectedLength];
                bool accepted = Zlib.TryInflateExactly(block, padding, ours);
                var theirs = new byte[expectedLength];
                bool zlibAccepts = SystemInflatesExactly([.. block, .. new byte[padding]], theirs);
                return accepted == zlibAccepts && (!accepted || ours.AsSpan().SequenceEqual(theirs));
            });
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(400), property);
    }

    [Fact]
    public void A_trailer_that_lies_in_the_zero_padding_is_read_as_zeroes()
    {
        var block = Compress(new byte[100], CompressionLevel.SmallestSize);
        // The deflate data ends where the trailer begins; with the trailer cut off, the padding stands for it and
        // reads as a checksum of zero, which no data has.
        var cut = block[..^4];
        Assert.False(Zlib.TryInflateExactly(cut, 4, new byte[100]));
        Assert.False(Zlib.TryInflateExactly(cut, 3, new byte[100]));
        Assert.True(Zlib.TryInflateExactly(block, 0, new byte[100]));
        Assert.True(Zlib.TryInflateExactly(block, 100, new byte[100]));
    }

    public enum Damage
    {
        None,
        FlipByte,
        Truncate,
        AppendGarbage,
        DropTrailer,
        SetDictionaryFlag,
        WrongLength,
    }

    private static byte[] Compress(byte[] data, CompressionLevel level)
    {
        using var output = new MemoryStream();
        using (var zlib = new ZLibStream(output, level))
            zlib.Write(data);
        return output.ToArray();
    }

    private static uint SystemAdler32(uint start, byte[] data)
    {
        fixed (byte* p = data)
            return (uint)SystemZlib.adler32_z(start, p, (nuint)data.Length);
    }

    /// <summary>zlib's own verdict: one inflate to the end of the stream, filling <paramref name="destination"/> exactly.</summary>
    private static bool SystemInflatesExactly(byte[] source, byte[] destination)
    {
        nuint destinationLength = (nuint)destination.Length, sourceLength = (nuint)source.Length;
        // uncompress2 wants somewhere to write even for an empty block.
        var target = destination.Length == 0 ? new byte[1] : destination;
        fixed (byte* src = source)
        fixed (byte* dst = target)
        {
            if (destination.Length == 0)
                destinationLength = 0;
            int rc = SystemZlib.uncompress2(dst, &destinationLength, src, &sourceLength);
            return rc == 0 && destinationLength == (nuint)destination.Length;
        }
    }

    private static partial class SystemZlib
    {
        [DllImport("libz.so.1")]
        public static extern nuint adler32_z(nuint adler, byte* buf, nuint len);

        [DllImport("libz.so.1")]
        public static extern int uncompress2(byte* dest, nuint* destLen, byte* source, nuint* sourceLen);
    }
}
