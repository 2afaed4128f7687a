using System.Text;
using Block.TestSupport;

namespace Block.Formats.Tests.Vpc;

/// <summary>
/// vpc (VHD) both ways against qemu-img/qemu-io 7.2, dynamic and fixed, with and without <c>force_size</c>: what one
/// tool writes, the other reads identically, and the same writes leave the same bytes; <c>blk info</c>, <c>map</c>
/// and <c>check</c> print what qemu-img prints; probing names the format qemu-img names (raw for fixed images); the
/// disk size follows qemu-img's rules by geometry and creator.
/// </summary>
public class VpcInteropTests
{
    private const string Size = "9M";

    /// <summary>Writes that hit whole blocks, parts of blocks, block boundaries, unaligned bytes and zeroes.</summary>
    private static readonly string[] Writes =
    [
        "write -P 0xaa 0 4k",
        "write -P 0xbb 2096000 1200",
        "write -P 0xcc 6M 2M",
        "write -z 4200k 16k",
        "write -P 0xee 9433088 4096",
        "write -P 0x5a 2000001 333",
        "write -P 0x11 3000k 2M",
    ];

    public static TheoryData<string> Kinds() => new("subformat=dynamic", "subformat=fixed", "force_size=on", "subformat=fixed,force_size=on");

    private static string[] O(string options) => options.Length == 0 ? [] : ["-o", options];

    private static long VirtualSize(string image, string format = "vpc")
    {
        var line = QemuImg.Run("info", "-f", format, image).EnsureSuccess("qemu-img info").Stdout.Split('\n').First(l => l.StartsWith("virtual size:", StringComparison.Ordinal));
        return long.Parse(line[(line.IndexOf('(', StringComparison.Ordinal) + 1)..line.IndexOf(' ', line.IndexOf('(', StringComparison.Ordinal))], System.Globalization.CultureInfo.InvariantCulture);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void What_qemu_io_writes_blk_reads_identically(string options)
    {
        using var dir = new TempDirectory();
        string image = dir.File("q.vhd");
        QemuImg.Create("vpc", image, Size, options);
        Images.QemuIo(image, "vpc", Writes);

        byte[] expected = Images.QemuRaw(dir, image, "vpc");
        using var graph = Images.Graph();
        var backend = Images.Open(graph, image, "vpc", readOnly: true);
        Assert.Equal(expected.Length, backend.Length);
        Assert.Equal(expected, BlockIo.Read(backend, 0, expected.Length));
        Assert.Equal(expected.AsSpan(2090000, 70000).ToArray(), BlockIo.Read(backend, 2090000, 70000));
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void What_blk_writes_qemu_reads_identically_in_the_bytes_qemu_io_would_write(string options)
    {
        using var dir = new TempDirectory();
        string ours = dir.File("b.vhd"), theirs = dir.File("q.vhd");
        BlkRunner.Run(["create", "-q", "-f", "vpc", .. O(options), ours, Size]).EnsureSuccess("blk create");
        QemuImg.Create("vpc", theirs, Size, options);
        Images.BlkIo(ours, "vpc", Writes);
        Images.QemuIo(theirs, "vpc", Writes);

        Assert.Equal(Images.QemuRaw(dir, theirs, "vpc"), Images.QemuRaw(dir, ours, "vpc"));
        Assert.Equal(0, QemuImg.Compare(ours, theirs, "vpc", "vpc"));
        // qemu-img cannot check vpc images; instead, the same writes in the same order lay the blocks out as QEMU's do.
        VpcFiles.AssertSameBytesButStamps(theirs, ours);
    }

    [Theory]
    [MemberData(nameof(Kinds))]
    public void Info_map_and_check_equal_qemu_img_for_images_written_by_either_tool(string options)
    {
        using var dir = new TempDirectory();
        string ours = dir.File("b.vhd"), theirs = dir.File("q.vhd");
        BlkRunner.Run(["create", "-q", "-f", "vpc", .. O(options), ours, Size]).EnsureSuccess("blk create");
        QemuImg.Create("vpc", theirs, Size, options);
        Images.BlkIo(ours, "vpc", Writes);
        Images.QemuIo(theirs, "vpc", Writes);
        foreach (string image in new[] { ours, theirs })
        {
            foreach (var command in new[] { new[] { "info" }, ["info", "--output=json"], ["map"], ["map", "--output=json"], ["check"] })
                Images.AssertSameOutput([.. command, "-f", "vpc", image]);
            // Probed: no -f. A fixed image has no footer at 0, so both tools take it for raw.
            Images.AssertSameOutput("info", image);
            Images.AssertSameOutput("map", "--output=json", image);
        }
    }

    [Theory]
    [InlineData("0", "")]
    [InlineData("1000", "")]
    [InlineData("3000000", "")]
    [InlineData("64M", "")]
    [InlineData("10M", "subformat=dynamic,preallocation=full")]
    [InlineData("1G", "")]
    [InlineData("130G", "")]
    [InlineData("2040G", "")]
    [InlineData("1000", "force_size=on")]
    [InlineData("10M", "force_size=on")]
    [InlineData("10M", "subformat=fixed")]
    [InlineData("3000000", "subformat=fixed,force_size=on")]
    [InlineData("10M", "subformat=fixed,preallocation=falloc")]
    public void Created_images_equal_qemu_imgs_byte_for_byte_but_the_stamps(string size, string options)
    {
        using var dir = new TempDirectory();
        string ours = dir.File("b.vhd"), theirs = dir.File("q.vhd");
        var q = QemuImg.Run(["create", "-f", "vpc", .. O(options), theirs, size]);
        var b = BlkRunner.Run(["create", "-f", "vpc", .. O(options), ours, size]);
        Assert.Equal(q.Stdout.Replace(theirs, ours, StringComparison.Ordinal), b.Stdout);
        Assert.Equal((q.ExitCode, ""), (b.ExitCode, b.Stderr));
        VpcFiles.AssertSameBytesButStamps(theirs, ours);
        Images.AssertSameOutput("info", "-f", "vpc", ours);
    }

    [Theory]
    [InlineData("2041G", "")]
    [InlineData("2041G", "force_size=on")]
    [InlineData("2041G", "subformat=fixed")]
    [InlineData("1M", "subformat=foo")]
    [InlineData("1M", "force_size=maybe")]
    [InlineData("1M", "preallocation=metadata")]
    [InlineData("1M", "preallocation=bogus")]
    [InlineData("1M", "cluster_size=64k")]
    public void Create_refuses_what_qemu_img_refuses_with_its_message(string size, string options)
    {
        using var dir = new TempDirectory();
        string image = dir.File("x.vhd");
        var q = QemuImg.Run(["create", "-q", "-f", "vpc", .. O(options), image, size]);
        File.Delete(image);
        var b = BlkRunner.Run(["create", "-q", "-f", "vpc", .. O(options), image, size]);
        Assert.NotEqual(0, q.ExitCode);
        Assert.Equal((q.ExitCode, BlkRunner.AsBlk(q.Stderr)), (b.ExitCode, b.Stderr));
    }

    [Fact]
    public void Resize_and_check_are_declined_as_qemu_img_declines_them()
    {
        using var dir = new TempDirectory();
        string image = dir.File("r.vhd");
        QemuImg.Create("vpc", image, "1M");
        Images.AssertSameOutput("resize", "-f", "vpc", image, "2M");
        Images.AssertSameOutput("check", "-f", "vpc", image);
        Images.AssertSameOutput("check", "-r", "all", "-f", "vpc", image);
    }

    /// <summary>The creator tags whose images QEMU sizes by the footer, and some it sizes by geometry.</summary>
    public static TheoryData<string, string> Creators()
    {
        var data = new TheoryData<string, string>();
        foreach (string creator in new[] { "win ", "vpc ", "vs  ", "d2v ", "CTXS", "tap\0", "tap ", "qem2", "qemu" })
        {
            data.Add(creator, "subformat=dynamic");
            data.Add(creator, "subformat=fixed");
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Creators))]
    public void The_disk_size_follows_qemus_rule_for_each_creator(string creator, string options)
    {
        using var dir = new TempDirectory();
        string image = dir.File("c.vhd");
        QemuImg.Create("vpc", image, "10M", options);
        Images.QemuIo(image, "vpc", "write -P 0x77 10220k 28k", "write -P 0x78 0 4k");
        // A footer that states a size smaller than the geometry's, and a creator tag, as another tool might write them.
        bool isFixed = options.Contains("fixed", StringComparison.Ordinal);
        foreach (long footer in isFixed ? new long[] { -1 } : [0, -1])
        {
            VpcFiles.PatchFooter(image, footer, 28, Encoding.Latin1.GetBytes(creator));
            VpcFiles.PatchFooter(image, footer, 48, VpcFiles.Be64(10 << 20));
        }
        long expected = creator is "win " or "d2v " or "CTXS" or "tap\0" or "qem2" ? 10 << 20 : 10514432;
        Assert.Equal(expected, VirtualSize(image));
        Images.AssertSameOutput("info", "-f", "vpc", image);
        Images.AssertSameOutput("map", "--output=json", "-f", "vpc", image);
        string raw = dir.File("c.raw");
        BlkRunner.Run("convert", "-f", "vpc", "-O", "raw", image, raw).EnsureSuccess("blk convert");
        Assert.Equal(Images.QemuRaw(dir, image, "vpc"), File.ReadAllBytes(raw));
    }

    [Theory]
    [InlineData("ffff10ff", 10L << 20)]   // the maximum geometry: the footer's size rules
    [InlineData("0001041b", 108L * 512)]  // any other: C·H·S
    public void The_maximum_geometry_makes_qemu_use_the_footers_size(string geometry, long size)
    {
        using var dir = new TempDirectory();
        string image = dir.File("g.vhd");
        QemuImg.Create("vpc", image, "10M");
        foreach (long footer in new long[] { 0, -1 })
        {
            VpcFiles.PatchFooter(image, footer, 56, Convert.FromHexString(geometry));
            VpcFiles.PatchFooter(image, footer, 48, VpcFiles.Be64(10 << 20));
        }
        Assert.Equal(size, VirtualSize(image));
        Images.AssertSameOutput("info", "-f", "vpc", image);
    }

    [Theory]
    [InlineData("subformat=dynamic")]
    [InlineData("subformat=fixed")]
    public void Convert_both_ways_keeps_the_content_and_allocates_what_qemu_img_allocates(string options)
    {
        using var dir = new TempDirectory();
        string raw = dir.File("in.raw"), vhd = dir.File("out.vhd"), back = dir.File("back.raw"), theirs = dir.File("theirs.vhd");
        var content = new byte[10514432];
        Patterns.Random(300_000, 7).CopyTo(content, 100_000);
        Patterns.Random(1 << 20, 8).CopyTo(content, 5 << 20);
        File.WriteAllBytes(raw, content);
        BlkRunner.Run("convert", "-f", "raw", "-O", "vpc", "-o", options, raw, vhd).EnsureSuccess("blk convert to vpc");
        QemuImg.Run("convert", "-f", "raw", "-O", "vpc", "-o", options, raw, theirs).EnsureSuccess("qemu-img convert");
        Assert.Equal(0, QemuImg.Compare(raw, vhd, "raw", "vpc"));
        VpcFiles.AssertSameBytesButStamps(theirs, vhd);
        BlkRunner.Run("convert", "-f", "vpc", "-O", "raw", vhd, back).EnsureSuccess("blk convert to raw");
        Assert.Equal(content, File.ReadAllBytes(back));
        Images.AssertSameOutput("map", "--output=json", "-f", "vpc", vhd);
    }
}
