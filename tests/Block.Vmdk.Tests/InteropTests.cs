using Block.TestSupport;

namespace Block.Vmdk.Tests;

/// <summary>
/// Every subformat both ways against qemu-img/qemu-io 7.2: what one tool writes, the other reads identically, and
/// <c>qemu-img check</c> finds what the library wrote clean; <c>blk info</c> and <c>blk map</c> print what qemu-img
/// prints for the same image.
/// </summary>
public class InteropTests
{
    private const string Size = "4M";
    private const int SizeBytes = 4 << 20;

    /// <summary>Writes that hit whole grains, parts of grains, grain boundaries, unaligned bytes and zeroes.</summary>
    private static readonly string[] Writes =
    [
        "write -P 0xaa 0 4k",
        "write -P 0xbb 65024 1024",
        "write -P 0xcc 300000 70000",
        "write -P 0xdd 1M 64k",
        "write -z 1200k 16k",
        "write -P 0xee 4190208 4096",
        "write -P 0x5a 2000001 333",
    ];

    /// <summary>streamOptimized takes each grain once and whole (the last one may end at the end of the disk).</summary>
    private static readonly string[] StreamWrites =
    [
        "write -P 0xaa 0 64k",
        "write -P 0xbb 1M 128k",
        "write -P 0xcc 3M 64k",
        "write -P 0xdd 4128768 65536",
    ];

    private static string[] WritesFor(string subformat) => subformat == "streamOptimized" ? StreamWrites : Writes;

    [Theory]
    [MemberData(nameof(Vmdk.All), MemberType = typeof(Vmdk))]
    public void What_qemu_io_writes_the_library_reads_identically(string subformat)
    {
        using var dir = new TempDirectory();
        string image = dir.File("q.vmdk");
        Vmdk.QemuCreate(image, Size, $"subformat={subformat}");
        Vmdk.QemuIo(image, WritesFor(subformat));

        byte[] expected = QemuRaw(dir, image);
        using var graph = Vmdk.Graph();
        var backend = Vmdk.Open(graph, image, readOnly: true);
        Assert.Equal(SizeBytes, backend.Length);
        Assert.Equal(expected, BlockIo.Read(backend, 0, SizeBytes));
        // Unaligned reads across grain and table boundaries go through the same mapping.
        Assert.Equal(expected.AsSpan(65000, 70000).ToArray(), BlockIo.Read(backend, 65000, 70000));
    }

    [Theory]
    [MemberData(nameof(Vmdk.All), MemberType = typeof(Vmdk))]
    public void What_blk_writes_qemu_io_reads_identically_and_check_is_clean(string subformat)
    {
        using var dir = new TempDirectory();
        string ours = dir.File("b.vmdk"), theirs = dir.File("q.vmdk");
        Assert.Equal(0, BlkRunner.Run("create", "-q", "-f", "vmdk", "-o", $"subformat={subformat}", ours, Size).ExitCode);
        Vmdk.QemuCreate(theirs, Size, $"subformat={subformat}");
        var args = new List<string> { "io", "-f", "vmdk" };
        foreach (var w in WritesFor(subformat))
            args.AddRange(["-c", w]);
        var r = BlkRunner.Run([.. args, ours]);
        Assert.True(r.ExitCode == 0 && !r.Stdout.Contains("failed", StringComparison.Ordinal), r.Stdout + r.Stderr);
        Vmdk.QemuIo(theirs, WritesFor(subformat));

        Vmdk.AssertCheckClean(ours);
        Assert.Equal(QemuRaw(dir, theirs), QemuRaw(dir, ours));
        Assert.Equal(0, QemuImg.Compare(ours, theirs, "vmdk", "vmdk"));
        foreach (var w in WritesFor(subformat).Where(w => w.Contains("-P", StringComparison.Ordinal)))
            Vmdk.QemuIo(ours, w.Replace("write", "read", StringComparison.Ordinal));
    }

    [Theory]
    [MemberData(nameof(Vmdk.All), MemberType = typeof(Vmdk))]
    public void Info_and_map_equal_qemu_img_for_images_written_by_either_tool(string subformat)
    {
        using var dir = new TempDirectory();
        string ours = dir.File("b.vmdk"), theirs = dir.File("q.vmdk");
        Assert.Equal(0, BlkRunner.Run("create", "-q", "-f", "vmdk", "-o", $"subformat={subformat}", ours, Size).ExitCode);
        Vmdk.QemuCreate(theirs, Size, $"subformat={subformat}");
        var args = new List<string> { "io", "-f", "vmdk" };
        foreach (var w in WritesFor(subformat))
            args.AddRange(["-c", w]);
        Assert.Equal(0, BlkRunner.Run([.. args, ours]).ExitCode);
        Vmdk.QemuIo(theirs, WritesFor(subformat));

        foreach (string image in new[] { ours, theirs })
        {
            AssertSameOutput(image, "info", "--output=json");
            AssertSameOutput(image, "info");
            AssertSameOutput(image, "map", "--output=json");
            AssertSameOutput(image, "map");
            AssertSameOutput(image, "check");
            AssertSameOutput(image, "check", "--output=json");
        }
    }

    [Theory]
    [InlineData("twoGbMaxExtentSparse")]
    [InlineData("twoGbMaxExtentFlat")]
    [InlineData("monolithicSparse")]
    public void Requests_crossing_the_2_GiB_extent_boundary_land_in_both_extents(string subformat)
    {
        using var dir = new TempDirectory();
        string image = dir.File("big.vmdk");
        Assert.Equal(0, BlkRunner.Run("create", "-q", "-f", "vmdk", "-o", $"subformat={subformat}", image, "3G").ExitCode);
        const long Boundary = 2L << 30;
        var data = Patterns.Fill(200_000, 0x42);
        using (var graph = Vmdk.Graph())
        {
            var backend = Vmdk.Open(graph, image);
            BlockIo.Write(backend, Boundary - 100_000, data);
            Assert.Equal(data, BlockIo.Read(backend, Boundary - 100_000, data.Length));
        }
        Vmdk.QemuIo(image, $"read -P 0x42 {Boundary - 100_000} {data.Length}", $"read -P 0 {Boundary - 100_512} 512", $"read -P 0 {Boundary + 100_000} 512");
        Vmdk.AssertCheckClean(image);
        AssertSameOutput(image, "map", "--output=json");
        AssertSameOutput(image, "info", "--output=json");

        // qemu-io writes across the boundary; the library reads it back.
        Vmdk.QemuIo(image, $"write -P 0x77 {Boundary - 4096} 8192");
        using var again = Vmdk.Graph();
        Assert.Equal(Patterns.Fill(8192, 0x77), BlockIo.Read(Vmdk.Open(again, image, readOnly: true), Boundary - 4096, 8192));
    }

    [Fact]
    public void Vmfs_and_vmfsSparse_disks_read_as_qemu_reads_them_and_vmfsSparse_is_read_only()
    {
        using var dir = new TempDirectory();
        // A COWD extent: 64 sectors of 4 KiB grains, directory at sector 4, one 4096-entry table at 5, grains from 37.
        var cowd = new byte[37 * 512 + 2 * 4096];
        new Format.CowdHeader(1, 3, 64, 8, 4, 1, 45, 0).Write(cowd);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(cowd.AsSpan(4 * 512), 5);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(cowd.AsSpan(5 * 512 + 2 * 4), 37);
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(cowd.AsSpan(5 * 512 + 5 * 4), 45);
        cowd.AsSpan(37 * 512, 4096).Fill(0xcd);
        cowd.AsSpan(45 * 512, 4096).Fill(0xdc);
        File.WriteAllBytes(dir.File("delta.vmdk"), cowd);
        File.WriteAllText(dir.File("sparse.vmdk"), "# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType=\"vmfsSparse\"\nRW 64 VMFSSPARSE \"delta.vmdk\"\n");
        File.WriteAllBytes(dir.File("flat-flat.vmdk"), Patterns.Random(1 << 20, 5));
        File.WriteAllText(dir.File("flat.vmdk"), "# Disk DescriptorFile\nversion=1\nCID=2\nparentCID=ffffffff\ncreateType=\"vmfs\"\nRW 2048 VMFS \"flat-flat.vmdk\"\n");
        foreach (var image in new[] { dir.File("sparse.vmdk"), dir.File("flat.vmdk") })
        {
            using (var graph = Vmdk.Graph())
            {
                var backend = Vmdk.Open(graph, image, readOnly: true);
                Assert.Equal(QemuRaw(dir, image), BlockIo.Read(backend, 0, (int)backend.Length));
            }
            AssertSameOutput(image, "info", "--output=json");
            AssertSameOutput(image, "map", "--output=json");
            AssertSameOutput(image, "info");
        }
        using var writable = Vmdk.Graph();
        Assert.Contains("can only be read", Assert.ThrowsAny<BlockException>(() => Vmdk.Open(writable, dir.File("sparse.vmdk"))).Message);
        BlockIo.Write(Vmdk.Open(writable, dir.File("flat.vmdk")), 0, Patterns.Fill(512, 1));
    }

    [Fact]
    public void Resize_and_repair_are_declined_as_qemu_img_declines_them()
    {
        using var dir = new TempDirectory();
        string image = dir.File("r.vmdk");
        Vmdk.QemuCreate(image, "1M");
        var q = QemuImg.Run("resize", "-f", "vmdk", image, "2M");
        var b = BlkRunner.Run("resize", "-f", "vmdk", image, "2M");
        Assert.Contains("does not support resize", q.Stderr);
        Assert.Equal((q.ExitCode, BlkRunner.AsBlk(q.Stderr), q.Stdout), (b.ExitCode, b.Stderr, b.Stdout));
        AssertSameOutput(image, "check", "-r", "leaks");
        AssertSameOutput(image, "check", "-r", "all");
        Assert.Equal(1L << 20, QemuImg.Info(image, "vmdk")["virtual-size"]!.GetValue<long>());
    }

    internal static void AssertSameOutput(string image, params string[] args)
    {
        var q = QemuImg.Run([.. args, "-f", "vmdk", image]);
        var b = BlkRunner.Run([.. args, "-f", "vmdk", image]);
        Assert.Equal(q.Stdout, b.Stdout);
        Assert.Equal(BlkRunner.AsBlk(q.Stderr), b.Stderr);
        Assert.Equal(q.ExitCode, b.ExitCode);
    }

    /// <summary>The image's content as qemu-img sees it.</summary>
    internal static byte[] QemuRaw(TempDirectory dir, string image)
    {
        string raw = dir.File(Path.GetFileNameWithoutExtension(image) + "-" + Guid.NewGuid().ToString("N")[..6] + ".raw");
        QemuImg.Run("convert", "-f", "vmdk", "-O", "raw", image, raw).EnsureSuccess("qemu-img convert");
        var bytes = File.ReadAllBytes(raw);
        File.Delete(raw);
        return bytes;
    }
}
