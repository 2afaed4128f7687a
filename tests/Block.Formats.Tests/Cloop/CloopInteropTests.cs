using Block.TestSupport;

namespace Block.Formats.Tests.Cloop;

/// <summary>
/// cloop images made by <c>create_compressed_fs</c> read by blk as qemu-img and qemu-io 7.2 read them: <c>convert</c>
/// to raw gives the same bytes, <c>info</c>, <c>map</c> and <c>check</c> print the same, <c>io</c> reads print the
/// same, probing names the format, and writes and creation are refused with QEMU's words.
/// </summary>
public class CloopInteropTests
{
    /// <summary>Block size, compression level (null: the tool's default, 9), disk bytes.</summary>
    public static TheoryData<int, int?, int> Layouts() => new()
    {
        { 65536, null, (5 << 16) + 3000 },   // the last block padded by the tool
        { 512, 0, 300 << 10 },               // the smallest block, stored uncompressed (level 0)
        { 1536, null, 200 << 10 },           // a block size that is not a power of two
        { 65536, -1, 1 << 20 },              // 7-zip's deflate
        { 1 << 20, null, (3 << 20) + 4096 },
    };

    [Theory]
    [MemberData(nameof(Layouts))]
    public void Images_from_create_compressed_fs_convert_to_the_raw_bytes_qemu_img_gives(int blockSize, int? level, int length)
    {
        using var dir = new TempDirectory();
        var content = CloopImages.Content(length);
        string image = CloopImages.Create(dir, dir.File("c.cloop"), content, blockSize, level), ours = dir.File("b.raw");
        byte[] expected = Images.QemuRaw(dir, image, "cloop");
        Assert.Equal(content, expected.AsSpan(0, length).ToArray());
        BlkRunner.Run("convert", "-f", "cloop", "-O", "raw", image, ours).EnsureSuccess("blk convert");
        Assert.Equal(expected, File.ReadAllBytes(ours));
        // Probed, too.
        BlkRunner.Run("convert", "-O", "raw", image, ours).EnsureSuccess("blk convert");
        Assert.Equal(expected, File.ReadAllBytes(ours));

        using var graph = Images.Graph();
        var backend = Images.Open(graph, image, "cloop", readOnly: true);
        foreach (var (at, n) in new[] { (60000L, 70000), (blockSize - 3L, 7), (length - 700L, 700), (0L, length) })
            Assert.Equal(expected.AsSpan((int)at, n).ToArray(), BlockIo.Read(backend, at, n));
    }

    [Theory]
    [MemberData(nameof(Layouts))]
    public void Info_map_and_check_equal_qemu_img_and_probing_names_cloop(int blockSize, int? level, int length)
    {
        using var dir = new TempDirectory();
        string image = CloopImages.Create(dir, dir.File("c.cloop"), CloopImages.Content(length), blockSize, level);
        foreach (var command in new[] { new[] { "info" }, ["info", "--output=json"], ["map"], ["map", "--output=json"], ["check"] })
            Images.AssertSameOutput([.. command, "-f", "cloop", image]);
        Images.AssertSameOutput("info", image);
        Images.AssertSameOutput("info", "--output=json", image);
    }

    [Fact]
    public void An_empty_file_probes_as_raw_as_in_qemu_not_as_cloop()
    {
        using var dir = new TempDirectory();
        string empty = dir.File("empty.img");
        File.WriteAllBytes(empty, []);
        Images.AssertSameOutput("info", empty);
        Images.AssertSameOutput("info", "--output=json", empty);
    }

    [Fact]
    public void Io_reads_print_what_qemu_io_prints()
    {
        using var dir = new TempDirectory();
        string image = CloopImages.Create(dir, dir.File("c.cloop"), CloopImages.Content(400 << 10), 65536);
        string[] commands = ["read -v 65000 1100", "read -P 0 131072 4096", "read -P 0x5a 204800 512", "read 300000 100000", "readv -v 1000 200 513"];
        Assert.DoesNotContain("failed", IoComparison.AssertSameReadOnly(image, "cloop", commands), StringComparison.Ordinal);
    }

    [Fact]
    public void Writes_creation_and_read_write_opens_are_refused_with_qemus_words()
    {
        using var dir = new TempDirectory();
        string image = CloopImages.Create(dir, dir.File("c.cloop"), CloopImages.Content(200 << 10), 65536);
        var before = File.ReadAllBytes(image);
        var q = QemuIo.Run(image, "cloop", "write 0 512");
        var b = BlkRunner.Run("io", "-f", "cloop", "-c", "write 0 512", image);
        Assert.Contains("Image is read-only", q.Stderr, StringComparison.Ordinal);
        Assert.Equal((q.ExitCode, q.Stdout, BlkRunner.AsBlk(q.Stderr)), (b.ExitCode, b.Stdout, b.Stderr));
        Images.AssertSameOutput("resize", "-f", "cloop", image, "8M");
        Images.AssertSameOutput("create", "-f", "cloop", dir.File("new.cloop"), "1M");
        Images.AssertSameOutput("convert", "-O", "cloop", image, dir.File("new.cloop"));
        Assert.Equal(before, File.ReadAllBytes(image));
    }
}
