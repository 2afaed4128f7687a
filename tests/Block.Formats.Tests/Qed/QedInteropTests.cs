using Block.TestSupport;

namespace Block.Formats.Tests.Qed;

/// <summary>
/// qed both ways against qemu-img/qemu-io 7.2, in each geometry and with raw and qed backing files: what one tool
/// writes, the other reads identically and lays out identically; <c>qemu-img check</c> finds what the library wrote
/// clean; <c>blk info</c>, <c>map</c> and <c>check</c> print what qemu-img prints; probing names the format.
/// </summary>
public class QedInteropTests
{
    private const string Size = "5M";
    private const int SizeBytes = 5 << 20;

    /// <summary>
    /// Writes that hit whole clusters, parts of clusters, cluster and L2-table boundaries (a 4 KiB-cluster table of two
    /// clusters maps 4 MiB), unaligned bytes, and zeroes of whole and partial clusters.
    /// </summary>
    private static readonly string[] Writes =
    [
        "write -P 0xaa 0 4k",
        "write -P 0xbb 70000 1200",
        "write -P 0xcc 3M 1M",
        "write -z 2M 128k",
        "write -z 2200k 16k",
        "write -P 0xee 5238784 4096",
        "write -P 0x5a 2000001 333",
        "write -P 0x11 1500k 2M",
        "write -z 4M 64k",
    ];

    public static TheoryData<string, string?> Setups() => new()
    {
        { "", null },
        { "cluster_size=4k,table_size=2", null },
        { "cluster_size=16k,table_size=2", null },
        { "", "raw" },
        { "cluster_size=4k,table_size=2", "qed" },
    };

    /// <summary>Creates the image with qemu-img or blk, with a backing file of <paramref name="backingFormat"/> holding a pattern.</summary>
    private static void Create(bool withBlk, TempDirectory dir, string image, string options, string? backingFormat)
    {
        var o = new List<string>();
        if (options.Length > 0)
            o.AddRange(["-o", options]);
        if (backingFormat != null)
        {
            string backing = dir.File("base." + backingFormat);
            if (!File.Exists(backing))
            {
                QemuImg.Create(backingFormat, backing, "4M");
                Images.QemuIo(backing, backingFormat, "write -P 0x77 0 4M", "write -z 1M 64k");
            }
            o.AddRange(["-b", backing, "-F", backingFormat]);
        }
        string[] args = ["create", "-q", "-f", "qed", .. o, image, Size];
        (withBlk ? BlkRunner.Run(args) : QemuImg.Run(args)).EnsureSuccess("create");
    }

    [Theory]
    [MemberData(nameof(Setups))]
    public void What_qemu_io_writes_blk_reads_identically(string options, string? backingFormat)
    {
        using var dir = new TempDirectory();
        string image = dir.File("q.qed");
        Create(withBlk: false, dir, image, options, backingFormat);
        Images.QemuIo(image, "qed", Writes);

        byte[] expected = Images.QemuRaw(dir, image, "qed");
        using var graph = Images.Graph();
        var backend = Images.Open(graph, image, "qed", readOnly: true);
        Assert.Equal(SizeBytes, backend.Length);
        Assert.Equal(expected, BlockIo.Read(backend, 0, SizeBytes));
        Assert.Equal(expected.AsSpan(60000, 170000).ToArray(), BlockIo.Read(backend, 60000, 170000));
    }

    [Theory]
    [MemberData(nameof(Setups))]
    public void What_blk_writes_qemu_reads_identically_laid_out_as_qemu_lays_it_out(string options, string? backingFormat)
    {
        using var dir = new TempDirectory();
        string ours = dir.File("b.qed"), theirs = dir.File("q.qed");
        Create(withBlk: true, dir, ours, options, backingFormat);
        Create(withBlk: false, dir, theirs, options, backingFormat);
        Images.BlkIo(ours, "qed", Writes);
        Images.QemuIo(theirs, "qed", Writes);

        Images.AssertCheckClean(ours, "qed");
        Assert.Equal(Images.QemuRaw(dir, theirs, "qed"), Images.QemuRaw(dir, ours, "qed"));
        Assert.Equal(0, QemuImg.Compare(ours, theirs, "qed", "qed"));
        // The same writes in the same order allocate the same clusters and tables: the files are equal but for the
        // backing file's name.
        AssertSameBytes(theirs, ours);
    }

    [Theory]
    [MemberData(nameof(Setups))]
    public void Info_map_and_check_equal_qemu_img_for_images_written_by_either_tool(string options, string? backingFormat)
    {
        using var dir = new TempDirectory();
        string ours = dir.File("b.qed"), theirs = dir.File("q.qed");
        Create(withBlk: true, dir, ours, options, backingFormat);
        Create(withBlk: false, dir, theirs, options, backingFormat);
        Images.BlkIo(ours, "qed", Writes);
        Images.QemuIo(theirs, "qed", Writes);
        foreach (string image in new[] { ours, theirs })
        {
            foreach (var command in new[] { new[] { "info" }, ["info", "--output=json"], ["map"], ["map", "--output=json"], ["check"], ["check", "--output=json"] })
                Images.AssertSameOutput([.. command, "-f", "qed", image]);
            Images.AssertSameOutput("info", image);
        }
    }

    [Theory]
    [InlineData("0", "")]
    [InlineData("1536", "")]
    [InlineData("1000001", "")]
    [InlineData("10M", "")]
    [InlineData("1G", "cluster_size=4k,table_size=2")]
    [InlineData("1G", "table_size=16,preallocation=full")]
    [InlineData("64T", "")]
    [InlineData("10M", "backing_fmt=raw")]
    public void Created_images_equal_qemu_imgs_byte_for_byte(string size, string options)
    {
        using var dir = new TempDirectory();
        string ours = dir.File("b.qed"), theirs = dir.File("q.qed");
        string[] o = options.Length == 0 ? [] : ["-o", options];
        var q = QemuImg.Run(["create", "-f", "qed", .. o, theirs, size]);
        var b = BlkRunner.Run(["create", "-f", "qed", .. o, ours, size]);
        Assert.Equal(q.Stdout.Replace(theirs, ours, StringComparison.Ordinal), b.Stdout);
        Assert.Equal((q.ExitCode, ""), (b.ExitCode, b.Stderr));
        AssertSameBytes(theirs, ours);
        Images.AssertCheckClean(ours, "qed");
    }

    [Theory]
    [InlineData("1M", "cluster_size=1k")]
    [InlineData("1M", "cluster_size=128M")]
    [InlineData("1M", "table_size=3")]
    [InlineData("1M", "table_size=0")]
    [InlineData("1M", "table_size=32")]
    [InlineData("100T", "")]
    [InlineData("8G", "cluster_size=4k,table_size=2")]
    [InlineData("1M", "preallocation=metadata")]
    [InlineData("1M", "preallocation=bogus")]
    public void Create_refuses_what_qemu_img_refuses_with_its_message(string size, string options)
    {
        using var dir = new TempDirectory();
        string image = dir.File("x.qed");
        string[] o = options.Length == 0 ? [] : ["-o", options];
        var q = QemuImg.Run(["create", "-q", "-f", "qed", .. o, image, size]);
        File.Delete(image);
        var b = BlkRunner.Run(["create", "-q", "-f", "qed", .. o, image, size]);
        Assert.NotEqual(0, q.ExitCode);
        Assert.Equal((q.ExitCode, BlkRunner.AsBlk(q.Stderr)), (b.ExitCode, b.Stderr));
    }

    [Theory]
    [InlineData("8M")]
    [InlineData("+3M")]
    [InlineData("4M")]
    [InlineData("100T")]
    [InlineData("5000001")]
    public void Resize_does_what_qemu_img_does(string size)
    {
        using var dir = new TempDirectory();
        string ours = dir.File("b.qed"), theirs = dir.File("q.qed");
        foreach (var image in new[] { ours, theirs })
        {
            QemuImg.Create("qed", image, Size);
            Images.QemuIo(image, "qed", "write -P 0x42 4M 1M");
        }
        var q = QemuImg.Run("resize", "-f", "qed", theirs, size);
        var b = BlkRunner.Run("resize", "-f", "qed", ours, size);
        Assert.Equal((q.ExitCode, q.Stdout, BlkRunner.AsBlk(q.Stderr).Replace(theirs, ours, StringComparison.Ordinal)), (b.ExitCode, b.Stdout, b.Stderr));
        AssertSameBytes(theirs, ours);
        Images.AssertSameOutput("info", "--output=json", "-f", "qed", ours);
        if (q.ExitCode == 0)
        {
            Images.BlkIo(ours, "qed", "write -P 0x43 7M 64k", "read -P 0x42 4M 1M", "read -P 0 5M 2M");
            Images.AssertCheckClean(ours, "qed");
        }
    }

    [Fact]
    public void Convert_both_ways_keeps_the_content_and_allocates_as_qemu_img()
    {
        using var dir = new TempDirectory();
        string raw = dir.File("in.raw"), qed = dir.File("out.qed"), back = dir.File("back.raw");
        var content = new byte[SizeBytes];
        Patterns.Random(300_000, 7).CopyTo(content, 100_000);
        Patterns.Random(1 << 20, 8).CopyTo(content, 3 << 20);
        File.WriteAllBytes(raw, content);
        BlkRunner.Run("convert", "-f", "raw", "-O", "qed", raw, qed).EnsureSuccess("blk convert to qed");
        Images.AssertCheckClean(qed, "qed");
        Assert.Equal(0, QemuImg.Compare(raw, qed, "raw", "qed"));
        BlkRunner.Run("convert", "-f", "qed", "-O", "raw", qed, back).EnsureSuccess("blk convert to raw");
        Assert.Equal(content, File.ReadAllBytes(back));
        string theirs = dir.File("theirs.qed");
        QemuImg.Run("convert", "-f", "raw", "-O", "qed", raw, theirs).EnsureSuccess("qemu-img convert");
        Assert.Equal(QemuImg.MapJsonText(theirs, "qed").Replace(theirs, qed, StringComparison.Ordinal), QemuImg.MapJsonText(qed, "qed"));
    }

    /// <summary>Asserts two qed files are byte for byte equal, but for the backing file name (which names a different directory).</summary>
    internal static void AssertSameBytes(string expected, string actual)
    {
        var a = File.ReadAllBytes(expected);
        var b = File.ReadAllBytes(actual);
        Assert.Equal(a.Length, b.Length);
        if (a.Length >= 64)
        {
            a.AsSpan(64, Math.Min(a.Length, 4096) - 64).Clear();
            b.AsSpan(64, Math.Min(b.Length, 4096) - 64).Clear();
        }
        int first = a.AsSpan().CommonPrefixLength(b);
        Assert.True(first == a.Length, $"the files differ first at byte 0x{first:x}");
    }
}
