using Block.TestSupport;

namespace Block.Formats.Tests.Bochs;

/// <summary>
/// bochs images written from the format's description read by blk as qemu-img 7.2 reads them: <c>convert</c> to raw
/// gives the same bytes, <c>info</c> and <c>map</c> print the same, probing names the format, and writes and creation
/// are refused with QEMU's words.
/// </summary>
public class BochsInteropTests
{
    /// <summary>A small image with stored sectors in several extents, sectors left out inside them, and a partial last extent.</summary>
    internal static BochsImageWriter Sample(uint version = 0x2_0000, uint extentSize = 64 << 10, long diskSize = (4 << 20) + 4096) =>
        new BochsImageWriter { DiskSize = diskSize, ExtentSize = extentSize, Version = version }
            .Data(0, Patterns.Random(4096, 1))
            .Data(8192, Patterns.Random(512, 2))
            .Data(Math.Min(extentSize * 3L, diskSize / 2) - 1024, Patterns.Random(2048, 3))
            .Data((1 << 20) + 512, Patterns.Random(65536, 4))
            .Data(diskSize - 1024, Patterns.Random(1024, 5));

    public static TheoryData<uint, uint> Layouts() => new()
    {
        { 0x2_0000, 512 },
        { 0x2_0000, 4096 },
        { 0x2_0000, 64 << 10 },
        { 0x2_0000, 2 << 20 },
        { 0x2_0000, 8 << 20 },
        { 0x1_0000, 32 << 10 },
    };

    [Theory]
    [MemberData(nameof(Layouts))]
    public void Images_written_from_the_spec_convert_to_the_raw_bytes_qemu_img_gives(uint version, uint extentSize)
    {
        using var dir = new TempDirectory();
        string image = Sample(version, extentSize).WriteTo(dir.File("s.bochs")), ours = dir.File("b.raw");
        byte[] expected = Images.QemuRaw(dir, image, "bochs");
        BlkRunner.Run("convert", "-f", "bochs", "-O", "raw", image, ours).EnsureSuccess("blk convert");
        Assert.Equal(expected, File.ReadAllBytes(ours));
        // Probed, too.
        BlkRunner.Run("convert", "-O", "raw", image, ours).EnsureSuccess("blk convert");
        Assert.Equal(expected, File.ReadAllBytes(ours));

        using var graph = Images.Graph();
        var backend = Images.Open(graph, image, "bochs", readOnly: true);
        Assert.Equal(expected.AsSpan(60000, 70000).ToArray(), BlockIo.Read(backend, 60000, 70000));
        Assert.Equal(expected.AsSpan(8190, 3).ToArray(), BlockIo.Read(backend, 8190, 3));
    }

    [Fact]
    public void What_the_writer_stored_is_what_blk_reads_and_the_sectors_it_left_out_are_zero()
    {
        using var dir = new TempDirectory();
        var content = new byte[(1 << 20)];
        var stored = Patterns.Random(1536, 9);
        stored.CopyTo(content, 70000 / 512 * 512);
        string image = new BochsImageWriter { DiskSize = content.Length, ExtentSize = 4096 }.Data(70000 / 512 * 512, stored).WriteTo(dir.File("z.bochs"));
        using var graph = Images.Graph();
        var backend = Images.Open(graph, image, "bochs", readOnly: true);
        Assert.Equal(content, BlockIo.Read(backend, 0, content.Length));
    }

    [Theory]
    [MemberData(nameof(Layouts))]
    public void Info_and_map_equal_qemu_img_and_probing_names_bochs(uint version, uint extentSize)
    {
        using var dir = new TempDirectory();
        string image = Sample(version, extentSize).WriteTo(dir.File("s.bochs"));
        foreach (var command in new[] { new[] { "info" }, ["info", "--output=json"], ["map"], ["map", "--output=json"], ["check"] })
            Images.AssertSameOutput([.. command, "-f", "bochs", image]);
        Images.AssertSameOutput("info", image);
        Images.AssertSameOutput("info", "--output=json", image);
    }

    [Fact]
    public void Writes_creation_and_resize_are_refused_with_qemus_words()
    {
        using var dir = new TempDirectory();
        string image = Sample().WriteTo(dir.File("s.bochs"));
        var before = File.ReadAllBytes(image);
        var q = QemuIo.Run(image, "bochs", "write 0 512");
        var b = BlkRunner.Run("io", "-f", "bochs", "-c", "write 0 512", image);
        Assert.Equal((q.ExitCode, q.Stdout, BlkRunner.AsBlk(q.Stderr)), (b.ExitCode, b.Stdout, b.Stderr));
        Images.AssertSameOutput("resize", "-f", "bochs", image, "8M");
        Images.AssertSameOutput("create", "-f", "bochs", dir.File("new.bochs"), "1M");
        Images.AssertSameOutput("convert", "-O", "bochs", image, dir.File("new.bochs"));
        Assert.Equal(before, File.ReadAllBytes(image));
    }
}
