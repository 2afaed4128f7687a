using System.Buffers.Binary;
using Block.Formats.Dmg;
using Block.TestSupport;

namespace Block.Formats.Tests.Dmg;

/// <summary>
/// Bad dmg trailers, resource forks, property lists and chunks: what QEMU refuses we refuse with its words (its
/// <c>error_report</c> line included), what it reads we read the same, corrupt chunks are I/O errors, and a table of a
/// million chunks opens with memory in proportion to the file.
/// </summary>
public class DmgMalformedImageTests
{
    private static string Write(TempDirectory dir, byte[] bytes, string name = "m.dmg")
    {
        string image = dir.File(name);
        File.WriteAllBytes(image, bytes);
        return image;
    }

    private static void AssertInfoAsQemu(string image)
    {
        DmgOracle.AssertSameOutput("info", "-f", "dmg", image);
        DmgOracle.AssertSameOutput("info", image);
    }

    [Theory]
    [InlineData(0x18, 0x7fff_0000_0000_0000ul)]   // data fork past the trailer
    [InlineData(0x28, 0x7fff_0000_0000_0000ul)]   // resource fork past the trailer
    [InlineData(0x30, 0x7fff_0000_0000_0000ul)]   // resource fork too long
    [InlineData(0xd8, 0x7fff_0000_0000_0000ul)]   // property list past the trailer
    [InlineData(0xe0, 0x7fff_0000_0000_0000ul)]   // property list too long
    [InlineData(0x1ec, 0x8000_0000_0000_0000ul)]  // a negative sector count
    [InlineData(0x30, 0ul)]                       // neither resource fork nor property list
    [InlineData(0x1ec, 1ul << 40)]                // a disk larger than the chunks: reads past them fail
    [InlineData(0x1ec, 100ul)]                    // a disk smaller than the chunks
    [InlineData(0x28, 0ul)]                       // the resource fork at 0: the data fork read as resources
    public void Trailer_fields_are_checked_as_qemu_checks_them(int offset, ulong value)
    {
        using var dir = new TempDirectory();
        var bytes = DmgInteropTests.Sample().ToArray();
        BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan(bytes.Length - 512 + offset), value);
        AssertInfoAsQemu(Write(dir, bytes));
    }

    [Theory]
    [InlineData(0)]        // empty: raw when probed, too short as dmg
    [InlineData(300)]      // shorter than a sector
    [InlineData(2048)]     // no trailer
    public void Files_without_a_trailer_are_refused_with_qemus_message(int length)
    {
        using var dir = new TempDirectory();
        AssertInfoAsQemu(Write(dir, new byte[length]));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(100)]
    [InlineData(511)]
    public void The_trailer_is_found_in_the_last_two_sectors_of_an_odd_sized_file(int tail)
    {
        using var dir = new TempDirectory();
        var bytes = DmgInteropTests.Sample().ToArray();
        string image = Write(dir, [.. bytes, .. new byte[tail]]);
        AssertInfoAsQemu(image);
        if (QemuImg.Run("info", "-f", "dmg", image).ExitCode == 0)
            Assert.Contains("read 512/512", DmgOracle.AssertSameIo(image, "read -v 1048576 512"), StringComparison.Ordinal);
    }

    /// <summary>A resource-fork image with one table of the given entries over a data fork of <paramref name="data"/>.</summary>
    private static byte[] WithEntries(byte[] data, long sectors, params (uint Type, long Sector, long Count, long Offset, long Length)[] entries)
    {
        var fork = DmgImageWriter.ResourceFork([DmgImageWriter.MishBlock(0, sectors, 0, entries)]);
        return [.. data, .. fork, .. DmgImageWriter.Koly(data.Length, data.Length, fork.Length, 0, 0, sectors)];
    }

    [Theory]
    [InlineData(0x8000_0005u, 131073L, 100L)]    // zlib: sector count over 64 MiB
    [InlineData(0u, 131073L, 0L)]                // zeroes are bounded too, in QEMU
    [InlineData(1u, 8L, (64L << 20) + 1)]        // raw: stored length over 64 MiB
    [InlineData(2u, 1L << 40, 0L)]               // ignored sectors are not bounded: opens
    public void Chunks_over_qemus_limits_are_refused_with_its_report(uint type, long count, long length)
    {
        using var dir = new TempDirectory();
        var image = Write(dir, WithEntries(new byte[4096], 8, ((uint)DmgChunkType.Raw, 0, 8, 0, 4096), (type, 8, count, 0, length)));
        AssertInfoAsQemu(image);
    }

    [Theory]
    [InlineData(0, 0x1000u)]     // resource data offset past the fork
    [InlineData(8, 0u)]          // no resource data
    [InlineData(8, 0xffff_ff00u)] // resource data length past the fork (in 32 bits it wraps, as QEMU adds)
    [InlineData(256, 0u)]        // a resource of length 0
    [InlineData(256, 0x1000u)]   // a resource longer than the resource data
    public void Resource_forks_are_walked_as_qemu_walks_them(int offset, uint value)
    {
        using var dir = new TempDirectory();
        var bytes = DmgInteropTests.Sample().ToArray();
        long fork = (long)BinaryPrimitives.ReadUInt64BigEndian(bytes.AsSpan(bytes.Length - 512 + 0x28));
        BinaryPrimitives.WriteUInt32BigEndian(bytes.AsSpan((int)fork + offset), value);
        AssertInfoAsQemu(Write(dir, bytes));
    }

    [Theory]
    [InlineData("</data>", "</dat>")]                          // an element never closed
    [InlineData("<data>", "<dat>")]                            // elements QEMU does not see: no chunks
    [InlineData("\n\t\t\t\t</data>", "@@@!!\n\t\t\t\t</data>")] // junk QEMU's base64 decoder skips
    public void Property_lists_are_read_as_qemu_reads_them(string from, string to)
    {
        using var dir = new TempDirectory();
        var bytes = DmgInteropTests.Sample(xml: true).ToArray();
        var text = System.Text.Encoding.Latin1.GetString(bytes);
        int at = text.IndexOf(from, StringComparison.Ordinal);
        string patched = text[..at] + to + text[(at + from.Length)..];
        var patchedBytes = System.Text.Encoding.Latin1.GetBytes(patched);
        // Keep the property list's length in the trailer right.
        long xmlLength = (long)BinaryPrimitives.ReadUInt64BigEndian(patchedBytes.AsSpan(patchedBytes.Length - 512 + 0xe0));
        BinaryPrimitives.WriteUInt64BigEndian(patchedBytes.AsSpan(patchedBytes.Length - 512 + 0xe0), (ulong)(xmlLength + to.Length - from.Length));
        string image = Write(dir, patchedBytes);
        AssertInfoAsQemu(image);
        DmgOracle.AssertSameIo(image, "read -v 0 64", "read -v 2000000 64");
    }

    [Fact]
    public void A_nul_byte_ends_the_property_list_and_reads_without_chunks_fail()
    {
        using var dir = new TempDirectory();
        var bytes = DmgInteropTests.Sample(xml: true).ToArray();
        long xmlOffset = (long)BinaryPrimitives.ReadUInt64BigEndian(bytes.AsSpan(bytes.Length - 512 + 0xd8));
        bytes[xmlOffset] = 0;
        string image = Write(dir, bytes);
        AssertInfoAsQemu(image);
        // QEMU 7.2 crashes here (its chunk search reads an empty table); an image without chunks reads as an I/O error.
        var r = BlkRunner.Run("io", "-r", "-f", "dmg", "-c", "read 0 512", image);
        Assert.Equal("read failed: Input/output error\n", r.Stdout);
    }

    [Fact]
    public void The_bytes_of_a_raw_chunk_past_its_stored_length_read_as_zeroes()
    {
        // QEMU returns whatever its chunk buffer last held there; we return zeroes.
        using var dir = new TempDirectory();
        var data = Patterns.Random(4096, 8);
        string image = Write(dir, WithEntries(data, 8, ((uint)DmgChunkType.Raw, 0, 8, 0, 1000)));
        using var graph = Images.Graph();
        var backend = Images.Open(graph, image, "dmg", readOnly: true);
        Assert.Equal([.. data.AsSpan(0, 1000), .. new byte[3096]], BlockIo.Read(backend, 0, 4096));
    }

    [Fact]
    public void Chunks_out_of_order_overlapping_or_past_the_file_read_as_in_qemu()
    {
        using var dir = new TempDirectory();
        var data = Patterns.Random(16 * 512, 4);
        var zlib = DmgImageWriter.Zlib(Patterns.Random(8 * 512, 5));
        var image = Write(dir, WithEntries([.. data, .. zlib], 64,
            ((uint)DmgChunkType.Raw, 8, 8, 4096, 4096),                        // out of order
            ((uint)DmgChunkType.Raw, 0, 8, 0, 4096),
            ((uint)DmgChunkType.Raw, 4, 8, 0, 4096),                           // overlapping
            ((uint)DmgChunkType.Zlib, 16, 8, data.Length, zlib.Length),
            ((uint)DmgChunkType.Raw, 24, 8, 1 << 30, 4096),                    // past the end of the file: zeroes
            ((uint)DmgChunkType.Zlib, 32, 8, 1 << 30, 100),                    // compressed past the end: an I/O error
            ((uint)DmgChunkType.Zlib, 40, 8, 0, 100),                          // not zlib: an I/O error
            ((uint)DmgChunkType.Raw, 48, 8, long.MaxValue - 10, 4096),         // beyond any request: an I/O error
            ((uint)0x7fff_fffe, 56, 8, 0, 0)));                                // a comment: no chunk there
        var commands = Enumerable.Range(0, 16).Select(i => $"read -v {i * 2048} 16").ToArray();
        DmgOracle.AssertSameIo(image, commands);
    }

    [Fact]
    public void A_table_of_a_million_chunks_opens_and_reads_as_in_qemu()
    {
        using var dir = new TempDirectory();
        const int chunks = 1_000_000;
        var entries = new (uint, long, long, long, long)[chunks];
        for (int i = 0; i < chunks; i++)
            entries[i] = (i % 2 == 0 ? (uint)DmgChunkType.Zero : (uint)DmgChunkType.Raw, i, 1, 0, 512);
        string image = Write(dir, WithEntries(Patterns.Random(512, 6), chunks, entries));
        AssertInfoAsQemu(image);
        DmgOracle.AssertSameIo(image, "read -v 0 1024", "read -v 511999488 1024");
    }

    [Fact]
    public void Base64_is_decoded_as_glib_decodes_it()
    {
        var output = new byte[16];
        Assert.Equal(3, DmgBlkxReader.DecodeBase64LikeGlib("TW\n\tFu"u8, output));
        Assert.Equal("Man"u8.ToArray(), output[..3]);
        Assert.Equal(1, DmgBlkxReader.DecodeBase64LikeGlib("TQ==QQ"u8, output));
        Assert.Equal(2, DmgBlkxReader.DecodeBase64LikeGlib("TWE=!"u8, output));
    }
}
