using Block.TestSupport;

namespace Block.Formats.Tests.Qcow;

/// <summary>
/// qcow (v1) both ways against qemu-img/qemu-io 7.2, plain, encrypted with legacy AES and over raw and qcow backing
/// files: what one tool writes, the other reads identically and lays out byte for byte alike; <c>info</c> and
/// <c>map</c> print what qemu-img prints; compressed clusters made by <c>qemu-img convert -c</c> read back, and a
/// partial write into one is rewritten as QEMU rewrites it.
/// </summary>
public class QcowInteropTests
{
    private const string Size = "5M";
    private const int SizeBytes = 5 << 20;
    private const string Secret = "secret,id=sec0,data=123456";

    /// <summary>Writes that hit whole clusters, parts of clusters, L2-table boundaries (a table maps 2 MiB), unaligned bytes and zeroes.</summary>
    private static readonly string[] Writes =
    [
        "write -P 0xaa 0 4k",
        "write -P 0xbb 70000 1200",
        "write -P 0xcc 3M 1M",
        "write -z 2M 128k",
        "write -P 0xee 5238784 4096",
        "write -P 0x5a 2000001 333",
        "write -P 0x11 1500k 700k",
    ];

    public static TheoryData<string, bool> Setups() => new()
    {
        { "", false },
        { "", true },
        { "raw", false },
        { "qcow", false },
        { "raw", true },
    };

    /// <summary>The image as <c>--image-opts</c> with its key, or as a plain file name.</summary>
    private static string[] ImageArgs(string image, bool encrypted) =>
        encrypted ? ["--object", Secret, "--image-opts", $"driver=qcow,file.filename={image},encrypt.key-secret=sec0"] : ["-f", "qcow", image];

    private static void Create(bool withBlk, TempDirectory dir, string image, string? backingFormat, bool encrypted)
    {
        var o = new List<string>();
        if (encrypted)
            o.AddRange(["--object", Secret, "-o", "encrypt.format=aes,encrypt.key-secret=sec0"]);
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
        string[] args = ["create", "-q", "-f", "qcow", .. o, image, Size];
        (withBlk ? BlkRunner.Run(args) : QemuImg.Run(args)).EnsureSuccess("create");
    }

    private static void Io(bool withBlk, string image, bool encrypted)
    {
        var args = new List<string>();
        foreach (var w in Writes)
            args.AddRange(["-c", w]);
        args.AddRange(ImageArgs(image, encrypted));
        var r = withBlk ? BlkRunner.Run(["io", .. args]) : ProcessRunner.Run(QemuIo.Path, args);
        Assert.True(r.ExitCode == 0 && !r.Stdout.Contains("failed", StringComparison.Ordinal), r.Stdout + r.Stderr);
    }

    private static byte[] Raw(TempDirectory dir, string image, bool encrypted)
    {
        string raw = dir.File(Guid.NewGuid().ToString("N")[..6] + ".raw");
        string[] source = encrypted ? ["--object", Secret, "--image-opts", $"driver=qcow,file.filename={image},encrypt.key-secret=sec0"] : ["-f", "qcow", image];
        QemuImg.Run(["convert", .. source, "-O", "raw", raw]).EnsureSuccess("qemu-img convert");
        var bytes = File.ReadAllBytes(raw);
        File.Delete(raw);
        return bytes;
    }

    [Theory]
    [MemberData(nameof(Setups))]
    public void What_qemu_io_writes_blk_reads_identically(string backingFormat, bool encrypted)
    {
        using var dir = new TempDirectory();
        string image = dir.File("q.qcow");
        Create(withBlk: false, dir, image, backingFormat.Length == 0 ? null : backingFormat, encrypted);
        Io(withBlk: false, image, encrypted);

        byte[] expected = Raw(dir, image, encrypted);
        string ours = dir.File("ours.raw");
        BlkRunner.Run(["convert", .. ImageArgs(image, encrypted), "-O", "raw", ours]).EnsureSuccess("blk convert");
        Assert.Equal(expected, File.ReadAllBytes(ours));
        Assert.Equal(SizeBytes, expected.Length);
    }

    /// <summary>The same image created and written by blk (<c>b.qcow</c>) and by qemu-img/qemu-io (<c>q.qcow</c>).</summary>
    private static (string Ours, string Theirs) WrittenByBoth(TempDirectory dir, string backingFormat, bool encrypted)
    {
        string ours = dir.File("b.qcow"), theirs = dir.File("q.qcow");
        string? backing = backingFormat.Length == 0 ? null : backingFormat;
        Create(withBlk: true, dir, ours, backing, encrypted);
        Create(withBlk: false, dir, theirs, backing, encrypted);
        Io(withBlk: true, ours, encrypted);
        Io(withBlk: false, theirs, encrypted);
        return (ours, theirs);
    }

    [Theory]
    [MemberData(nameof(Setups))]
    public void What_blk_writes_qemu_reads_identically_laid_out_byte_for_byte_as_qemu_lays_it_out(string backingFormat, bool encrypted)
    {
        using var dir = new TempDirectory();
        var (ours, theirs) = WrittenByBoth(dir, backingFormat, encrypted);

        Assert.Equal(Raw(dir, theirs, encrypted), Raw(dir, ours, encrypted));
        // The same writes in the same order allocate the same clusters and tables, and legacy AES has no random IVs:
        // the files are equal but for the backing file's name.
        AssertSameBytes(theirs, ours);
    }

    [Theory]
    [MemberData(nameof(Setups))]
    public void Info_and_map_equal_qemu_img_for_images_written_by_either_tool(string backingFormat, bool encrypted)
    {
        using var dir = new TempDirectory();
        var (ours, theirs) = WrittenByBoth(dir, backingFormat, encrypted);
        foreach (string image in new[] { ours, theirs })
        {
            foreach (var command in new[] { new[] { "info" }, ["info", "--output=json"], ["map"], ["map", "--output=json"], ["check"] })
                Images.AssertSameOutput([.. command, "-f", "qcow", image]);
            Images.AssertSameOutput("info", image);
            Images.AssertSameOutput(["map", "--output=json", .. ImageArgs(image, encrypted)]);
        }
    }

    [Theory]
    [InlineData("1536", "")]
    [InlineData("1000001", "")]
    [InlineData("10M", "")]
    [InlineData("2G", "")]
    [InlineData("1G", "preallocation=full")]
    [InlineData("10M", "backing_file=base.raw,backing_fmt=raw")]
    [InlineData("10M", "encrypt.format=aes,encrypt.key-secret=sec0")]
    [InlineData("10M", "encryption=on,encrypt.key-secret=sec0")]
    public void Created_images_equal_qemu_imgs_byte_for_byte(string size, string options)
    {
        using var dir = new TempDirectory();
        QemuImg.Create("raw", dir.File("base.raw"), "1M");
        string ours = dir.File("b.qcow"), theirs = dir.File("q.qcow");
        string[] o = options.Length == 0 ? [] : ["--object", Secret, "-o", options.Replace("base.raw", dir.File("base.raw"), StringComparison.Ordinal)];
        var q = QemuImg.Run(["create", "-f", "qcow", .. o, theirs, size]);
        var b = BlkRunner.Run(["create", "-f", "qcow", .. o, ours, size]);
        Assert.Equal(q.Stdout.Replace(theirs, ours, StringComparison.Ordinal), b.Stdout);
        Assert.Equal((q.ExitCode, ""), (b.ExitCode, b.Stderr));
        Assert.Equal(File.ReadAllBytes(theirs), File.ReadAllBytes(ours));
        Images.AssertSameOutput("info", "-f", "qcow", ours);
    }

    [Theory]
    [InlineData("0", "")]
    [InlineData("1M", "preallocation=metadata")]
    [InlineData("1M", "preallocation=bogus")]
    [InlineData("1M", "cluster_size=64k")]
    [InlineData("1M", "encrypt.format=luks,encrypt.key-secret=sec0")]
    [InlineData("1M", "encrypt.format=bogus")]
    [InlineData("1M", "encrypt.format=aes")]
    [InlineData("1M", "encryption=on")]
    [InlineData("1M", "encrypt.key-secret=sec0")]
    [InlineData("1M", "encrypt.format=aes,encrypt.key-secret=nosuch")]
    [InlineData("1M", "encrypt.format=aes,encryption=on,encrypt.key-secret=sec0")]
    [InlineData("1M", "encrypt.format=aes,encrypt.key-secret=sec0,encrypt.cipher-alg=aes-256")]
    public void Create_refuses_what_qemu_img_refuses_with_its_message(string size, string options)
    {
        using var dir = new TempDirectory();
        string image = dir.File("x.qcow");
        string[] o = options.Length == 0 ? [] : ["--object", Secret, "-o", options];
        var q = QemuImg.Run(["create", "-q", "-f", "qcow", .. o, image, size]);
        File.Delete(image);
        var b = BlkRunner.Run(["create", "-q", "-f", "qcow", .. o, image, size]);
        Assert.NotEqual(0, q.ExitCode);
        Assert.Equal((q.ExitCode, BlkRunner.AsBlk(q.Stderr)), (b.ExitCode, b.Stderr));
    }

    [Fact]
    public void Compressed_clusters_made_by_qemu_img_read_back_and_a_partial_write_rewrites_them_as_qemu_does()
    {
        using var dir = new TempDirectory();
        string raw = dir.File("in.raw");
        var content = new byte[3 << 20];
        Patterns.Fill(1 << 20, 0x11).CopyTo(content, 0);
        Patterns.Fill(8192, 0x33).CopyTo(content, 1500 * 1024);
        Patterns.Random(100_000, 5).CopyTo(content, 2_000_000);
        File.WriteAllBytes(raw, content);
        string ours = dir.File("b.qcow"), theirs = dir.File("q.qcow");
        // qemu-img 7.2 exits 1 without a message after writing a compressed qcow image whole (its final zero-length
        // compressed write fails); the image itself is complete, as qemu-img compare shows.
        QemuImg.Run("convert", "-c", "-f", "raw", "-O", "qcow", raw, theirs);
        Assert.Equal(0, QemuImg.Compare(raw, theirs, "raw", "qcow"));
        File.Copy(theirs, ours);

        string back = dir.File("back.raw");
        BlkRunner.Run("convert", "-f", "qcow", "-O", "raw", ours, back).EnsureSuccess("blk convert");
        Assert.Equal(content, File.ReadAllBytes(back));
        Images.AssertSameOutput("map", "--output=json", "-f", "qcow", ours);

        Images.BlkIo(ours, "qcow", "write -P 0x44 4096 512", "write -P 0x45 1500k 4k", "read -P 0x11 0 4096", "read -P 0x33 1504k 4k");
        Images.QemuIo(theirs, "qcow", "write -P 0x44 4096 512", "write -P 0x45 1500k 4k");
        Assert.Equal(File.ReadAllBytes(theirs), File.ReadAllBytes(ours));
    }

    [Fact]
    public void Convert_both_ways_keeps_the_content_and_allocates_as_qemu_img()
    {
        using var dir = new TempDirectory();
        string raw = dir.File("in.raw"), ours = dir.File("out.qcow"), back = dir.File("back.raw"), theirs = dir.File("theirs.qcow");
        var content = new byte[SizeBytes];
        Patterns.Random(300_000, 7).CopyTo(content, 100_000);
        Patterns.Random(1 << 20, 8).CopyTo(content, 3 << 20);
        File.WriteAllBytes(raw, content);
        BlkRunner.Run("convert", "-f", "raw", "-O", "qcow", raw, ours).EnsureSuccess("blk convert to qcow");
        Assert.Equal(0, QemuImg.Compare(raw, ours, "raw", "qcow"));
        BlkRunner.Run("convert", "-f", "qcow", "-O", "raw", ours, back).EnsureSuccess("blk convert to raw");
        Assert.Equal(content, File.ReadAllBytes(back));
        QemuImg.Run("convert", "-f", "raw", "-O", "qcow", raw, theirs).EnsureSuccess("qemu-img convert");
        Assert.Equal(File.ReadAllBytes(theirs), File.ReadAllBytes(ours));
    }

    [Fact]
    public void Commit_empties_the_overlay_as_qemu_img_does()
    {
        using var dir = new TempDirectory();
        string ours = dir.File("b.qcow"), theirs = dir.File("q.qcow");
        foreach (var (image, withBlk) in new[] { (ours, true), (theirs, false) })
        {
            string backing = dir.File((withBlk ? "b" : "q") + "-base.raw");
            QemuImg.Create("raw", backing, "4M");
            QemuImg.Create("qcow", image, "4M", $"backing_file={backing},backing_fmt=raw");
            Images.QemuIo(image, "qcow", "write -P 0x61 64k 64k", "write -P 0x62 3M 4k");
            (withBlk ? BlkRunner.Run("commit", "-f", "qcow", image) : QemuImg.Run("commit", "-f", "qcow", image)).EnsureSuccess("commit");
        }
        // Equal but for the backing file's name (and, as its length is the same, nothing else).
        AssertSameBytes(theirs, ours);
        Assert.Equal(File.ReadAllBytes(dir.File("q-base.raw")), File.ReadAllBytes(dir.File("b-base.raw")));
    }

    /// <summary>Asserts two qcow files are byte for byte equal but for the backing file's name right after the header.</summary>
    internal static void AssertSameBytes(string expected, string actual)
    {
        var a = File.ReadAllBytes(expected);
        var b = File.ReadAllBytes(actual);
        Assert.Equal(a.Length, b.Length);
        int nameLength = (int)System.Buffers.Binary.BinaryPrimitives.ReadUInt32BigEndian(a.AsSpan(16));
        if (System.Buffers.Binary.BinaryPrimitives.ReadUInt64BigEndian(a.AsSpan(8)) == 48)
        {
            a.AsSpan(48, nameLength).Clear();
            b.AsSpan(48, nameLength).Clear();
        }
        int first = a.AsSpan().CommonPrefixLength(b);
        Assert.True(first == a.Length, $"the files differ first at byte 0x{first:x}");
    }
}
