using Block.TestSupport;

namespace Block.Formats.Tests.Vdi;

/// <summary>
/// vdi both ways against qemu-img/qemu-io 7.2, dynamic and static: what one tool writes, the other reads identically;
/// <c>qemu-img check</c> finds what the library wrote clean; <c>blk info</c>, <c>map</c> and <c>check</c> print what
/// qemu-img prints; probing names the format.
/// </summary>
public class VdiInteropTests
{
    private const string Size = "5M";
    private const int SizeBytes = 5 << 20;

    /// <summary>Writes that hit whole blocks, parts of blocks, block boundaries, unaligned bytes and zeroes.</summary>
    private static readonly string[] Writes =
    [
        "write -P 0xaa 0 4k",
        "write -P 0xbb 1048000 1200",
        "write -P 0xcc 3M 1M",
        "write -z 2200k 16k",
        "write -P 0xee 5238784 4096",
        "write -P 0x5a 2000001 333",
        "write -P 0x11 1500k 2M",
    ];

    public static TheoryData<string> Kinds() => new("static=off", "static=on");

    [Theory]
    [MemberData(nameof(Kinds))]
    public void What_qemu_io_writes_blk_reads_identically(string options)
    {
        using var dir = new TempDirectory();
        string image = dir.File("q.vdi");
        QemuImg.Create("vdi", image, Size, options);
        Images.QemuIo(image, "vdi", Writes);

        byte[] expected = Images.QemuRaw(dir, image, "vdi");
        using var graph = Images.Graph();
        var backend = Images.Open(graph, image, "vdi", readOnly: true);
        Assert.Equal(SizeBytes, backend.Length);
        Assert.Equal(expected, BlockIo.Read(backend, 0, SizeBytes));
        Assert.Equal(expected.AsSpan(1040000, 70000).ToArray(), BlockIo.Read(backend, 1040000, 70000));
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void What_blk_writes_qemu_reads_identically_and_check_is_clean(string options)
    {
        using var dir = new TempDirectory();
        string ours = dir.File("b.vdi"), theirs = dir.File("q.vdi");
        BlkRunner.Run("create", "-q", "-f", "vdi", "-o", options, ours, Size).EnsureSuccess("blk create");
        QemuImg.Create("vdi", theirs, Size, options);
        Images.BlkIo(ours, "vdi", Writes);
        Images.QemuIo(theirs, "vdi", Writes);

        Images.AssertCheckClean(ours, "vdi");
        Assert.Equal(Images.QemuRaw(dir, theirs, "vdi"), Images.QemuRaw(dir, ours, "vdi"));
        Assert.Equal(0, QemuImg.Compare(ours, theirs, "vdi", "vdi"));
        // The same writes in the same order lay the blocks out the same way: the files are equal but for the UUIDs.
        AssertSameBytesButUuids(theirs, ours);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Info_map_and_check_equal_qemu_img_for_images_written_by_either_tool(string options)
    {
        using var dir = new TempDirectory();
        string ours = dir.File("b.vdi"), theirs = dir.File("q.vdi");
        BlkRunner.Run("create", "-q", "-f", "vdi", "-o", options, ours, Size).EnsureSuccess("blk create");
        QemuImg.Create("vdi", theirs, Size, options);
        Images.BlkIo(ours, "vdi", Writes);
        Images.QemuIo(theirs, "vdi", Writes);
        foreach (string image in new[] { ours, theirs })
        {
            foreach (var command in new[] { new[] { "info" }, ["info", "--output=json"], ["map"], ["map", "--output=json"], ["check"], ["check", "--output=json"] })
            {
                Images.AssertSameOutput([.. command, "-f", "vdi", image]);
            }
            // Probed: no -f.
            Images.AssertSameOutput("info", image);
        }
    }

    [Theory]
    [InlineData("0", "")]
    [InlineData("3000000", "")]
    [InlineData("10M", "")]
    [InlineData("1G", "")]
    [InlineData("3000000", "static=on")]
    [InlineData("10M", "static=on")]
    [InlineData("10M", "static=on,preallocation=full")]
    [InlineData("10M", "static=on,preallocation=falloc")]
    [InlineData("10M", "preallocation=full")]
    public void Created_images_equal_qemu_imgs_byte_for_byte_but_the_uuids(string size, string options)
    {
        using var dir = new TempDirectory();
        string ours = dir.File("b.vdi"), theirs = dir.File("q.vdi");
        string[] o = options.Length == 0 ? [] : ["-o", options];
        var q = QemuImg.Run(["create", "-f", "vdi", .. o, theirs, size]);
        var b = BlkRunner.Run(["create", "-f", "vdi", .. o, ours, size]);
        Assert.Equal(q.Stdout.Replace(theirs, ours, StringComparison.Ordinal), b.Stdout);
        Assert.Equal((q.ExitCode, ""), (b.ExitCode, b.Stderr));
        AssertSameBytesButUuids(theirs, ours);
        Images.AssertCheckClean(ours, "vdi");
        Assert.Equal(new FileInfo(theirs).Length, new FileInfo(ours).Length);
    }

    [Theory]
    [InlineData("600T", "")]
    [InlineData("1M", "preallocation=metadata")]
    [InlineData("1M", "preallocation=bogus")]
    [InlineData("1M", "static=maybe")]
    [InlineData("1M", "cluster_size=64k")]
    public void Create_refuses_what_qemu_img_refuses_with_its_message(string size, string options)
    {
        using var dir = new TempDirectory();
        string image = dir.File("x.vdi");
        string[] o = options.Length == 0 ? [] : ["-o", options];
        var q = QemuImg.Run(["create", "-q", "-f", "vdi", .. o, image, size]);
        File.Delete(image);
        var b = BlkRunner.Run(["create", "-q", "-f", "vdi", .. o, image, size]);
        Assert.NotEqual(0, q.ExitCode);
        Assert.Equal((q.ExitCode, BlkRunner.AsBlk(q.Stderr)), (b.ExitCode, b.Stderr));
    }

    [Fact]
    public void Resize_and_repair_are_declined_as_qemu_img_declines_them()
    {
        using var dir = new TempDirectory();
        string image = dir.File("r.vdi");
        QemuImg.Create("vdi", image, "1M");
        Images.AssertSameOutput("resize", "-f", "vdi", image, "2M");
        Images.AssertSameOutput("check", "-r", "leaks", "-f", "vdi", image);
        Images.AssertSameOutput("check", "-r", "all", "-f", "vdi", image);
    }

    [Fact]
    public void Convert_both_ways_keeps_the_content_and_the_result_checks_clean()
    {
        using var dir = new TempDirectory();
        string raw = dir.File("in.raw"), vdi = dir.File("out.vdi"), back = dir.File("back.raw");
        var content = new byte[SizeBytes];
        Patterns.Random(300_000, 7).CopyTo(content, 100_000);
        Patterns.Random(1 << 20, 8).CopyTo(content, 3 << 20);
        File.WriteAllBytes(raw, content);
        BlkRunner.Run("convert", "-f", "raw", "-O", "vdi", raw, vdi).EnsureSuccess("blk convert to vdi");
        Images.AssertCheckClean(vdi, "vdi");
        Assert.Equal(0, QemuImg.Compare(raw, vdi, "raw", "vdi"));
        BlkRunner.Run("convert", "-f", "vdi", "-O", "raw", vdi, back).EnsureSuccess("blk convert to raw");
        Assert.Equal(content, File.ReadAllBytes(back));
        // Only the blocks holding data were allocated, as qemu-img convert allocates them.
        string theirs = dir.File("theirs.vdi");
        QemuImg.Run("convert", "-f", "raw", "-O", "vdi", raw, theirs).EnsureSuccess("qemu-img convert");
        Images.AssertSameOutput("map", "--output=json", "-f", "vdi", vdi);
        Assert.Equal(QemuImg.MapJsonText(theirs, "vdi").Replace(theirs, vdi, StringComparison.Ordinal), QemuImg.MapJsonText(vdi, "vdi"));
    }

    /// <summary>Asserts two vdi files are equal apart from the image and snapshot UUIDs QEMU draws at random.</summary>
    internal static void AssertSameBytesButUuids(string expected, string actual)
    {
        var a = File.ReadAllBytes(expected);
        var b = File.ReadAllBytes(actual);
        Assert.Equal(a.Length, b.Length);
        if (a.Length >= 0x1a8)
        {
            a.AsSpan(0x188, 32).Clear();
            b.AsSpan(0x188, 32).Clear();
        }
        int first = a.AsSpan().CommonPrefixLength(b);
        Assert.True(first == a.Length, $"the files differ first at byte 0x{first:x}");
    }
}
