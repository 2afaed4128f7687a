using Block.TestSupport;

namespace Block.Formats.Tests.Parallels;

/// <summary>
/// parallels both ways against qemu-img/qemu-io 7.2, in several cluster sizes (one not a power of two) and in both
/// signatures: what one tool writes, the other reads identically and lays out identically; <c>qemu-img check</c>
/// finds what the library wrote clean; <c>blk info</c>, <c>map</c> and <c>check</c> print what qemu-img prints;
/// probing names the format; a backing image given at open is read and copied up as QEMU does.
/// </summary>
public class ParallelsInteropTests
{
    private const string Size = "5M";
    private const int SizeBytes = 5 << 20;

    /// <summary>Writes that hit whole clusters, parts of clusters, runs of new clusters, cluster boundaries, unaligned bytes and zeroes.</summary>
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

    public static TheoryData<string> Options() => new("", "cluster_size=64k", "cluster_size=1536", "cluster_size=4k");

    [Theory]
    [MemberData(nameof(Options))]
    public void What_qemu_io_writes_blk_reads_identically(string options)
    {
        using var dir = new TempDirectory();
        string image = dir.File("q.prl");
        QemuImg.Create("parallels", image, Size, options.Length > 0 ? options : null);
        Images.QemuIo(image, "parallels", Writes);

        byte[] expected = Images.QemuRaw(dir, image, "parallels");
        using var graph = Images.Graph();
        var backend = Images.Open(graph, image, "parallels", readOnly: true);
        Assert.Equal(SizeBytes, backend.Length);
        Assert.Equal(expected, BlockIo.Read(backend, 0, SizeBytes));
        Assert.Equal(expected.AsSpan(1040000, 70000).ToArray(), BlockIo.Read(backend, 1040000, 70000));
    }

    [Theory]
    [MemberData(nameof(Options))]
    public void What_blk_writes_qemu_reads_identically_laid_out_as_qemu_lays_it_out(string options)
    {
        using var dir = new TempDirectory();
        string ours = dir.File("b.prl"), theirs = dir.File("q.prl");
        string[] o = options.Length > 0 ? ["-o", options] : [];
        BlkRunner.Run(["create", "-q", "-f", "parallels", .. o, ours, Size]).EnsureSuccess("blk create");
        QemuImg.Create("parallels", theirs, Size, options.Length > 0 ? options : null);
        Images.BlkIo(ours, "parallels", Writes);
        Images.QemuIo(theirs, "parallels", Writes);

        Images.AssertCheckClean(ours, "parallels");
        Assert.Equal(Images.QemuRaw(dir, theirs, "parallels"), Images.QemuRaw(dir, ours, "parallels"));
        Assert.Equal(0, QemuImg.Compare(ours, theirs, "parallels", "parallels"));
        // The same writes in the same order allocate the same clusters: the files are equal, in-use flag (cleared) and all.
        Assert.Equal(File.ReadAllBytes(theirs), File.ReadAllBytes(ours));
    }

    [Theory]
    [MemberData(nameof(Options))]
    public void Info_map_and_check_equal_qemu_img_for_images_written_by_either_tool(string options)
    {
        using var dir = new TempDirectory();
        string ours = dir.File("b.prl"), theirs = dir.File("q.prl");
        string[] o = options.Length > 0 ? ["-o", options] : [];
        BlkRunner.Run(["create", "-q", "-f", "parallels", .. o, ours, Size]).EnsureSuccess("blk create");
        QemuImg.Create("parallels", theirs, Size, options.Length > 0 ? options : null);
        Images.BlkIo(ours, "parallels", Writes);
        Images.QemuIo(theirs, "parallels", Writes);
        foreach (string image in new[] { ours, theirs })
        {
            foreach (var command in new[] { new[] { "info" }, ["info", "--output=json"], ["map"], ["map", "--output=json"], ["check"], ["check", "--output=json"] })
                Images.AssertSameOutput([.. command, "-f", "parallels", image]);
            // Probed: no -f.
            Images.AssertSameOutput("info", image);
        }
    }

    [Theory]
    [InlineData("0", "")]
    [InlineData("1000", "")]
    [InlineData("100000001", "")]
    [InlineData("10M", "cluster_size=4k")]
    [InlineData("10M", "cluster_size=1000")]
    [InlineData("1G", "cluster_size=512")]
    [InlineData("10M", "preallocation=full")]
    [InlineData("10M", "preallocation=falloc")]
    [InlineData("5T", "")]
    [InlineData("2P", "")]
    [InlineData("1M", "cluster_size=1G")]
    public void Created_images_equal_qemu_imgs_byte_for_byte(string size, string options)
    {
        using var dir = new TempDirectory();
        string ours = dir.File("b.prl"), theirs = dir.File("q.prl");
        string[] o = options.Length == 0 ? [] : ["-o", options];
        var q = QemuImg.Run(["create", "-f", "parallels", .. o, theirs, size]);
        var b = BlkRunner.Run(["create", "-f", "parallels", .. o, ours, size]);
        Assert.Equal(q.Stdout.Replace(theirs, ours, StringComparison.Ordinal), b.Stdout);
        Assert.Equal((q.ExitCode, ""), (b.ExitCode, b.Stderr));
        Assert.Equal(File.ReadAllBytes(theirs), File.ReadAllBytes(ours));
        // Over 2^29 entries QEMU makes an image it cannot open itself (its BAT end wraps in 32 bits); so do we.
        Images.AssertSameOutput("info", "-f", "parallels", ours);
    }

    [Theory]
    [InlineData("1M", "cluster_size=0")]
    [InlineData("1M", "cluster_size=4T")]
    [InlineData("5P", "cluster_size=1k")]
    [InlineData("1M", "preallocation=metadata")]
    [InlineData("1M", "preallocation=bogus")]
    [InlineData("1M", "table_size=2")]
    public void Create_refuses_what_qemu_img_refuses_with_its_message(string size, string options)
    {
        using var dir = new TempDirectory();
        string image = dir.File("x.prl");
        string[] o = options.Length == 0 ? [] : ["-o", options];
        var q = QemuImg.Run(["create", "-q", "-f", "parallels", .. o, image, size]);
        File.Delete(image);
        var b = BlkRunner.Run(["create", "-q", "-f", "parallels", .. o, image, size]);
        Assert.NotEqual(0, q.ExitCode);
        Assert.Equal((q.ExitCode, BlkRunner.AsBlk(q.Stderr)), (b.ExitCode, b.Stderr));
    }

    [Fact]
    public void Create_with_a_backing_file_and_resize_are_refused_as_qemu_img_refuses_them()
    {
        using var dir = new TempDirectory();
        string image = dir.File("r.prl"), backing = dir.File("base.raw");
        QemuImg.Create("raw", backing, "1M");
        QemuImg.Create("parallels", image, "1M");
        Images.AssertSameOutput("create", "-q", "-f", "parallels", "-b", backing, "-F", "raw", dir.File("c.prl"), "1M");
        Images.AssertSameOutput("resize", "-f", "parallels", image, "2M");
    }

    [Fact]
    public void Images_of_the_old_signature_are_read_and_written_as_qemu_does()
    {
        using var dir = new TempDirectory();
        string ours = dir.File("b.prl"), theirs = dir.File("q.prl");
        foreach (var image in new[] { ours, theirs })
        {
            QemuImg.Create("parallels", image, Size, "cluster_size=64k");
            Images.QemuIo(image, "parallels", "write -P 0x61 0 64k", "write -P 0x62 300k 10k", "write -P 0x63 128k 4k");
            ParallelsImages.ToOldSignature(image);
        }
        Images.AssertSameOutput("info", ours);
        Images.AssertSameOutput("map", "--output=json", "-f", "parallels", ours);
        Images.AssertSameOutput("check", "-f", "parallels", ours);
        Assert.Equal(Images.QemuRaw(dir, theirs, "parallels"), BlkRunnerRaw(dir, ours));

        Images.BlkIo(ours, "parallels", "write -P 0x64 4M 8k", "write -P 0x65 60k 8k");
        Images.QemuIo(theirs, "parallels", "write -P 0x64 4M 8k", "write -P 0x65 60k 8k");
        Assert.Equal(File.ReadAllBytes(theirs), File.ReadAllBytes(ours));
    }

    [Fact]
    public void A_backing_image_given_at_open_is_read_and_copied_up_as_qemu_does()
    {
        using var dir = new TempDirectory();
        string backing = dir.File("base.raw"), ours = dir.File("b.prl"), theirs = dir.File("q.prl");
        File.WriteAllBytes(backing, Patterns.Random(SizeBytes - 300 * 1024, 5));
        foreach (var image in new[] { ours, theirs })
            QemuImg.Create("parallels", image, Size, "cluster_size=64k");
        string Opts(string image) => $"driver=parallels,file.filename={image},backing.driver=raw,backing.file.driver=file,backing.file.filename={backing}";
        string[] writes = ["write -P 0x71 100000 5000", "write -P 0x72 3M 1M", "write -P 0x73 5000k 4k"];
        var q = ProcessRunner.Run(QemuIo.Path, ["--image-opts", .. writes.SelectMany(w => new[] { "-c", w }), Opts(theirs)]);
        var b = BlkRunner.Run(["io", "--image-opts", .. writes.SelectMany(w => new[] { "-c", w }), Opts(ours)]);
        Assert.Equal((0, 0), (q.ExitCode, b.ExitCode));
        Assert.Equal(File.ReadAllBytes(theirs), File.ReadAllBytes(ours));

        // What lies under the new data is the backing image's (zeroes past its end), read through both tools.
        string[] read = ["read -P 0x71 100000 5000", "read -P 0x72 3M 1M", "read -P 0x73 5000k 4k", "read -P 0 4900k 96k"];
        var bq = ProcessRunner.Run(QemuIo.Path, ["--image-opts", .. read.SelectMany(r => new[] { "-c", r }), Opts(ours)]);
        var bb = BlkRunner.Run(["io", "--image-opts", .. read.SelectMany(r => new[] { "-c", r }), Opts(ours)]);
        Assert.DoesNotContain("failed", bq.Stdout + bb.Stdout, StringComparison.Ordinal);
        var under = BlkRunner.Run(["io", "--image-opts", "-c", "read -v 98304 1696", Opts(ours)]);
        var underQ = ProcessRunner.Run(QemuIo.Path, ["--image-opts", "-c", "read -v 98304 1696", Opts(theirs)]);
        Assert.Equal(BlkRunner.Normalize(underQ.Stdout), BlkRunner.Normalize(under.Stdout));
    }

    [Fact]
    public void Convert_both_ways_keeps_the_content_and_allocates_as_qemu_img()
    {
        using var dir = new TempDirectory();
        string raw = dir.File("in.raw"), prl = dir.File("out.prl"), back = dir.File("back.raw");
        var content = new byte[SizeBytes];
        Patterns.Random(300_000, 7).CopyTo(content, 100_000);
        Patterns.Random(1 << 20, 8).CopyTo(content, 3 << 20);
        File.WriteAllBytes(raw, content);
        BlkRunner.Run("convert", "-f", "raw", "-O", "parallels", raw, prl).EnsureSuccess("blk convert to parallels");
        Images.AssertCheckClean(prl, "parallels");
        Assert.Equal(0, QemuImg.Compare(raw, prl, "raw", "parallels"));
        BlkRunner.Run("convert", "-f", "parallels", "-O", "raw", prl, back).EnsureSuccess("blk convert to raw");
        Assert.Equal(content, File.ReadAllBytes(back));
        string theirs = dir.File("theirs.prl");
        QemuImg.Run("convert", "-f", "raw", "-O", "parallels", raw, theirs).EnsureSuccess("qemu-img convert");
        Assert.Equal(File.ReadAllBytes(theirs), File.ReadAllBytes(prl));
    }

    private static byte[] BlkRunnerRaw(TempDirectory dir, string image)
    {
        string raw = dir.File("blk-" + Guid.NewGuid().ToString("N")[..6] + ".raw");
        BlkRunner.Run("convert", "-f", "parallels", "-O", "raw", image, raw).EnsureSuccess("blk convert");
        return File.ReadAllBytes(raw);
    }
}
