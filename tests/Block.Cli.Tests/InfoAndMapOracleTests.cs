using Block.TestSupport;

namespace Block.Cli.Tests;

/// <summary><c>blk info</c> and <c>blk map</c> print what qemu-img prints, byte for byte.</summary>
public class InfoAndMapOracleTests
{
    public static TheoryData<long, long?> SparseLayouts() => new()
    {
        { 0, null },
        { 1 << 20, null },
        { 10000, 0 },
        { 10000, 8192 },
        { (1 << 20) + 512, 1 << 20 },
        { 3 * 1024 * 1024 + 100, 2 << 20 },
    };

    [Theory]
    [MemberData(nameof(SparseLayouts))]
    public void Info_and_map_of_sparse_raw_files_equal_qemu_img(long size, long? dataOffset)
    {
        using var dir = new TempDirectory();
        string path = RawImages.Sparse(dir, "s.raw", size, dataOffset);
        AssertSameAsQemuImg(path, "info", "--output=json");
        AssertSameAsQemuImg(path, "info");
        AssertSameAsQemuImg(path, "map", "--output=json");
        AssertSameAsQemuImg(path, "map");
    }

    [Fact]
    public void Map_of_a_layout_with_zero_ranges_holes_and_data_equals_qemu_img()
    {
        using var dir = new TempDirectory();
        string path = RawImages.Layout(dir);
        AssertSameAsQemuImg(path, "map", "--output=json");
        AssertSameAsQemuImg(path, "map");
        AssertSameAsQemuImg(path, "info", "--output=json");
    }

    [Theory]
    [InlineData("--start-offset=64k")]
    [InlineData("--start-offset=100000")]
    [InlineData("--max-length=300000")]
    [InlineData("--start-offset=1000", "--max-length=1")]
    [InlineData("--start-offset=4194304")]
    [InlineData("--start-offset=5M")]
    [InlineData("--max-length=0")]
    [InlineData("--start-offset=0x1000")]
    public void Map_windows_equal_qemu_img(params string[] window)
    {
        using var dir = new TempDirectory();
        string path = RawImages.Layout(dir);
        AssertSameAsQemuImg(path, ["map", "--output=json", .. window]);
        AssertSameAsQemuImg(path, ["map", .. window]);
    }

    [Fact]
    public void Info_of_an_image_created_by_blk_equals_qemu_img_on_one_it_created()
    {
        using var dir = new TempDirectory();
        string ours = dir.File("ours.raw"), theirs = dir.File("theirs.raw");
        Assert.Equal(0, BlkRunner.Run("create", "-q", "-f", "raw", ours, "16M").ExitCode);
        QemuImg.Create("raw", theirs, "16M");
        Assert.Equal(QemuImg.MapJsonText(theirs), BlkRunner.Run("map", "--output=json", "-f", "raw", ours).Stdout);
        Assert.Equal(new FileInfo(theirs).Length, new FileInfo(ours).Length);
    }

    [Fact]
    public void Info_with_image_opts_and_backing_chain_json_equal_qemu_img()
    {
        using var dir = new TempDirectory();
        string path = RawImages.Sparse(dir, "s.raw", 1 << 20, 4096);
        AssertSameAsQemuImg(path, "info", "--backing-chain", "--output=json");
        var q = QemuImg.Run("info", "--output=json", "--image-opts", $"driver=raw,file.filename={path}");
        var b = BlkRunner.Run("info", "--output=json", "--image-opts", $"driver=raw,file.filename={path}");
        Assert.Equal(q.Stdout, b.Stdout);
    }

    [Theory]
    [InlineData("info", "missing.raw")]
    [InlineData("map", "missing.raw")]
    [InlineData("info", "--output=xml", "x")]
    [InlineData("info", "a", "b")]
    [InlineData("info", "-x", "a")]
    [InlineData("info", "-f", "bogus", "x")]
    [InlineData("map", "--start-offset=-1", "x")]
    [InlineData("map", "--max-length=abc", "x")]
    public void Errors_match_qemu_img(params string[] args)
    {
        using var dir = new TempDirectory();
        var q = QemuImg.Run(args, dir.Path);
        var b = RunIn(dir, args);
        Assert.Equal(q.ExitCode, b.ExitCode);
        Assert.Equal(BlkRunner.Normalize(q.Stderr), b.Stderr);
        Assert.Equal(q.Stdout, b.Stdout);
    }

    internal static ProcessResult RunIn(TempDirectory dir, string[] args)
    {
        // Relative names in the arguments resolve against the test directory.
        var rewritten = args.Select(a => a.EndsWith(".raw", StringComparison.Ordinal) && !a.Contains('/') ? dir.File(a) : a).ToArray();
        var r = BlkRunner.Run(rewritten);
        return r with { Stdout = r.Stdout.Replace(dir.Path + "/", string.Empty), Stderr = r.Stderr.Replace(dir.Path + "/", string.Empty) };
    }

    internal static void AssertSameAsQemuImg(string path, params string[] args)
    {
        var q = QemuImg.Run([.. args, "-f", "raw", path]);
        var b = BlkRunner.Run([.. args, "-f", "raw", path]);
        Assert.Equal(0, q.ExitCode);
        Assert.Equal(q.Stdout, b.Stdout);
        Assert.Equal(BlkRunner.Normalize(q.Stderr), b.Stderr);
        Assert.Equal(q.ExitCode, b.ExitCode);
    }
}
