using Block.Formats.Dmg;
using Block.TestSupport;

namespace Block.Formats.Tests.Dmg;

/// <summary>
/// dmg images written from the format's description read by blk as qemu-img and qemu-io 7.2 read them (zlib, raw,
/// zero and ignored chunks, tables in the resource fork or the XML property list), bzip2 chunks read as written (the
/// oracle here has no bzip2 module), lzfse chunks a clear error, and writes refused with QEMU's words.
/// </summary>
public class DmgInteropTests
{
    /// <summary>A disk of <paramref name="length"/> bytes: random data, zero stretches, a compressible run.</summary>
    internal static byte[] Content(int length, int seed = 1)
    {
        var content = Patterns.Random(length, seed);
        for (int at = length / 5; at < length; at += length / 3)
            content.AsSpan(at, Math.Min(length - at, 300000)).Clear();
        Patterns.Fill(Math.Min(length / 7, 100000), 0x5a).CopyTo(content, length / 2);
        return content;
    }

    /// <summary>Every chunk type QEMU reads here, by chunk index: zlib, raw, ignore, zero (or zero where the data is zero).</summary>
    internal static DmgChunkType Mixed(int index, byte[] data) =>
        !data.AsSpan().ContainsAnyExcept((byte)0) ? (index % 2 == 0 ? DmgChunkType.Zero : DmgChunkType.Ignore)
        : index % 3 == 1 ? DmgChunkType.Raw : DmgChunkType.Zlib;

    internal static DmgImageWriter Sample(bool xml = false, int chunkSectors = 256, int partitions = 2, int length = (3 << 20) + 7 * 512, int dataForkOffset = 0) =>
        new() { Content = Content(length), ChunkSectors = chunkSectors, Partitions = partitions, Xml = xml, TypeOf = Mixed, DataForkOffset = dataForkOffset };

    /// <summary>Tables in the XML list or the resource fork, chunk sectors, partitions, data fork offset.</summary>
    public static TheoryData<bool, int, int, int> Layouts() => new()
    {
        { false, 256, 2, 0 },
        { true, 256, 2, 0 },
        { false, 2048, 1, 0 },
        { true, 8, 5, 4096 },
        { false, 1, 3, 512 },
    };

    [Theory]
    [MemberData(nameof(Layouts))]
    public void Images_written_from_the_spec_convert_to_the_raw_bytes_qemu_img_gives(bool xml, int chunkSectors, int partitions, int dataForkOffset)
    {
        using var dir = new TempDirectory();
        var writer = Sample(xml, chunkSectors, partitions, dataForkOffset: dataForkOffset);
        string image = writer.WriteTo(dir.File("s.dmg")), ours = dir.File("b.raw");
        byte[] expected = DmgOracle.QemuRaw(dir, image);
        Assert.Equal(writer.Content, expected);
        BlkRunner.Run("convert", "-f", "dmg", "-O", "raw", image, ours).EnsureSuccess("blk convert");
        Assert.Equal(expected, File.ReadAllBytes(ours));
        // Probed by its name, too.
        BlkRunner.Run("convert", "-O", "raw", image, ours).EnsureSuccess("blk convert");
        Assert.Equal(expected, File.ReadAllBytes(ours));

        using var graph = Images.Graph();
        var backend = Images.Open(graph, image, "dmg", readOnly: true);
        foreach (var (at, n) in new[] { (60000L, 200000), (chunkSectors * 512L - 3, 7), (expected.Length - 700L, 700) })
            Assert.Equal(expected.AsSpan((int)at, n).ToArray(), BlockIo.Read(backend, at, n));
    }

    [Theory]
    [MemberData(nameof(Layouts))]
    public void Info_map_and_check_equal_qemu_img_and_probing_names_dmg(bool xml, int chunkSectors, int partitions, int dataForkOffset)
    {
        using var dir = new TempDirectory();
        string image = Sample(xml, chunkSectors, partitions, dataForkOffset: dataForkOffset).WriteTo(dir.File("s.dmg"));
        foreach (var command in new[] { new[] { "info" }, ["info", "--output=json"], ["map"], ["map", "--output=json"], ["check"] })
            DmgOracle.AssertSameOutput([.. command, "-f", "dmg", image]);
        DmgOracle.AssertSameOutput("info", image);
        DmgOracle.AssertSameOutput("info", "--output=json", image);
        // Not named .dmg: raw, as in QEMU.
        string other = dir.File("s.img");
        File.Copy(image, other);
        DmgOracle.AssertSameOutput("info", other);
    }

    [Fact]
    public void Io_reads_print_what_qemu_io_prints()
    {
        using var dir = new TempDirectory();
        string image = Sample().WriteTo(dir.File("s.dmg"));
        string output = DmgOracle.AssertSameIo(image, "read -v 130000 1100", "read -P 0 700000 4096", "read 1000000 1000000", "readv -v 1000 200 513",
            "read -v 3145216 4096");
        Assert.DoesNotContain("failed", output, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Bzip2_chunks_read_as_the_spec_writes_them(bool xml)
    {
        using var dir = new TempDirectory();
        var writer = new DmgImageWriter
        {
            Content = Content(2 << 20, 7),
            ChunkSectors = 512,
            Xml = xml,
            TypeOf = (i, data) => i % 2 == 0 ? DmgChunkType.Bzip2 : Mixed(i, data),
        };
        string image = writer.WriteTo(dir.File("bz.dmg")), ours = dir.File("b.raw");
        BlkRunner.Run("convert", "-f", "dmg", "-O", "raw", image, ours).EnsureSuccess("blk convert");
        Assert.Equal(writer.Content, File.ReadAllBytes(ours));
        using var graph = Images.Graph();
        var backend = Images.Open(graph, image, "dmg", readOnly: true);
        Assert.Equal(writer.Content.AsSpan(262000, 5000).ToArray(), BlockIo.Read(backend, 262000, 5000));
    }

    [Fact]
    public void A_corrupt_bzip2_chunk_is_an_io_error()
    {
        using var dir = new TempDirectory();
        var writer = new DmgImageWriter { Content = Content(1 << 20, 7), ChunkSectors = 512, TypeOf = (_, _) => DmgChunkType.Bzip2 };
        var bytes = writer.ToArray();
        bytes[100] ^= 0xff;
        string image = dir.File("bad.dmg");
        File.WriteAllBytes(image, bytes);
        var r = BlkRunner.Run("io", "-r", "-f", "dmg", "-c", "read 0 512", "-c", "read 300000 512", image);
        Assert.Equal("read failed: Input/output error\n", r.Stdout.Split('\n')[0] + "\n");
        Assert.Contains("read 512/512 bytes at offset 300000", r.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Lzfse_chunks_are_left_out_with_qemus_warning_and_fail_to_read_saying_why()
    {
        using var dir = new TempDirectory();
        var writer = new DmgImageWriter { Content = Content(1 << 20, 3), ChunkSectors = 512, TypeOf = (i, _) => i == 0 ? DmgChunkType.Lzfse : DmgChunkType.Raw };
        string image = writer.WriteTo(dir.File("lz.dmg"));
        string output = DmgOracle.AssertSameIo(image, "read 0 512", "read -v 300000 16");
        Assert.Contains("warning: dmg-lzfse module is missing", output, StringComparison.Ordinal);
        using var graph = Images.Graph();
        var backend = Images.Open(graph, image, "dmg", readOnly: true);
        var e = Assert.ThrowsAny<BlockException>(() => BlockIo.Read(backend, 0, 512));
        Assert.Equal(Errno.EIO, e.Errno);
        Assert.Contains("lzfse", e.Message, StringComparison.Ordinal);
        Assert.Equal(writer.Content.AsSpan(300000, 512).ToArray(), BlockIo.Read(backend, 300000, 512));
    }

    [Fact]
    public void Writes_creation_and_read_write_opens_are_refused_with_qemus_words()
    {
        using var dir = new TempDirectory();
        string image = Sample().WriteTo(dir.File("s.dmg"));
        var before = File.ReadAllBytes(image);
        var q = QemuIo.Run(image, "dmg", "write 0 512");
        var b = BlkRunner.Run("io", "-f", "dmg", "-c", "write 0 512", image);
        Assert.Contains("Image is read-only", q.Stderr, StringComparison.Ordinal);
        Assert.Equal((q.ExitCode, q.Stdout, BlkRunner.AsBlk(DmgOracle.WithoutModuleNotes(q.Stderr))), (b.ExitCode, b.Stdout, b.Stderr));
        DmgOracle.AssertSameOutput("resize", "-f", "dmg", image, "8M");
        DmgOracle.AssertSameOutput("create", "-f", "dmg", dir.File("new.dmg"), "1M");
        DmgOracle.AssertSameOutput("convert", "-O", "dmg", image, dir.File("new.dmg"));
        Assert.Equal(before, File.ReadAllBytes(image));
    }
}
