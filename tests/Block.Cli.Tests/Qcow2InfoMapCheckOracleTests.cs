using Block.TestSupport;

namespace Block.Cli.Tests;

/// <summary><c>blk info</c>, <c>blk map</c> and <c>blk check</c> on qcow2 images print what qemu-img prints, byte for byte.</summary>
public class Qcow2InfoMapCheckOracleTests
{
    private static readonly string[][] s_views =
    [
        ["info"], ["info", "--output=json"], ["map"], ["map", "--output=json"], ["check"], ["check", "--output=json"],
    ];

    /// <summary>Images qemu-img created with an option and qemu-io wrote to.</summary>
    [Theory]
    [InlineData(null)]
    [InlineData("compat=0.10")]
    [InlineData("lazy_refcounts=on")]
    [InlineData("cluster_size=4k")]
    [InlineData("cluster_size=512,refcount_bits=1")]
    [InlineData("extended_l2=on")]
    [InlineData("compression_type=zstd")]
    [InlineData("refcount_bits=64")]
    public void Every_view_of_a_populated_image_equals_qemu_img(string? options)
    {
        using var dir = new TempDirectory();
        string path = Qcow2Images.Layout(dir.File("x.qcow2"), options);
        foreach (var view in s_views)
            AssertSameAsQemuImg(path, view);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("1000")]
    [InlineData("64M")]
    [InlineData("1T")]
    public void Every_view_of_an_empty_image_equals_qemu_img(string size)
    {
        using var dir = new TempDirectory();
        string path = dir.File("x.qcow2");
        QemuImg.Create("qcow2", path, size);
        foreach (var view in s_views)
            AssertSameAsQemuImg(path, view);
    }

    [Theory]
    [InlineData("--start-offset=100k", "--max-length=1M")]
    [InlineData("--start-offset=2M")]
    [InlineData("--max-length=600k")]
    [InlineData("--start-offset=63M")]
    public void Map_windows_equal_qemu_img(params string[] window)
    {
        using var dir = new TempDirectory();
        string path = Qcow2Images.Layout(dir.File("x.qcow2"));
        AssertSameAsQemuImg(path, ["map", "--output=json", .. window]);
        AssertSameAsQemuImg(path, ["map", .. window]);
    }

    [Fact]
    public void Human_map_stops_at_compressed_clusters_as_qemu_img_does()
    {
        using var dir = new TempDirectory();
        string path = dir.File("x.qcow2");
        QemuImg.Create("qcow2", path, "4M");
        QemuIo.RunChecked(path, "qcow2", "write -P 1 0 64k", "write -c -P 2 1M 64k", "write -P 3 2M 64k");
        var r = AssertSameAsQemuImg(path, "map");
        Assert.Equal(1, r.ExitCode);
    }

    [Theory]
    [InlineData("top.qcow2")]
    [InlineData("mid.qcow2")]
    [InlineData("base.qcow2")]
    public void Backing_chains_show_as_in_qemu_img(string image)
    {
        using var dir = new TempDirectory();
        Qcow2Images.Chain(dir);
        string path = dir.File(image);
        foreach (var view in s_views)
            AssertSameAsQemuImg(path, view);
        AssertSameAsQemuImg(path, "info", "--backing-chain");
        AssertSameAsQemuImg(path, "info", "--backing-chain", "--output=json");
    }

    [Fact]
    public void A_raw_backing_file_shows_as_in_qemu_img()
    {
        using var dir = new TempDirectory();
        string raw = RawImages.Sparse(dir, "base.raw", 32 << 20, 0, 65536);
        string path = dir.File("x.qcow2");
        QemuImg.Run("create", "-q", "-f", "qcow2", "-b", "base.raw", "-F", "raw", path).EnsureSuccess("qemu-img create");
        QemuIo.RunChecked(path, "qcow2", "write -P 7 1M 64k");
        foreach (var view in s_views)
            AssertSameAsQemuImg(path, view);
        AssertSameAsQemuImg(path, "info", "--backing-chain");
        Assert.True(File.Exists(raw));
    }

    [Fact]
    public void Relative_and_absolute_backing_names_show_as_in_qemu_img()
    {
        using var dir = new TempDirectory();
        Qcow2Images.Chain(dir);
        Directory.CreateDirectory(dir.File("sub"));
        string relative = dir.File("sub/rel.qcow2"), absolute = dir.File("abs.qcow2");
        QemuImg.Run("create", "-q", "-f", "qcow2", "-b", "../base.qcow2", "-F", "qcow2", relative).EnsureSuccess("qemu-img create");
        QemuImg.Run("create", "-q", "-f", "qcow2", "-b", dir.File("mid.qcow2"), "-F", "qcow2", absolute).EnsureSuccess("qemu-img create");
        foreach (var path in new[] { relative, absolute })
        {
            AssertSameAsQemuImg(path, "info");
            AssertSameAsQemuImg(path, "info", "--backing-chain", "--output=json");
            AssertSameAsQemuImg(path, "map", "--output=json");
        }
    }

    [Fact]
    public void A_missing_backing_file_fails_where_qemu_img_fails()
    {
        using var dir = new TempDirectory();
        string path = dir.File("x.qcow2");
        QemuImg.Run("create", "-q", "-f", "qcow2", "-u", "-b", "missing.qcow2", "-F", "qcow2", path, "1M").EnsureSuccess("qemu-img create");
        AssertSameAsQemuImg(path, "info");
        AssertSameAsQemuImg(path, "info", "--output=json");
        foreach (var view in new[] { new[] { "info", "--backing-chain" }, ["map"], ["check"] })
            Assert.Equal(1, AssertSameAsQemuImg(path, view).ExitCode);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void External_data_files_show_as_in_qemu_img(bool raw)
    {
        using var dir = new TempDirectory();
        string path = dir.File("x.qcow2");
        QemuImg.Create("qcow2", path, "16M", $"data_file={dir.File("x.data")},data_file_raw={(raw ? "on" : "off")}");
        QemuIo.RunChecked(path, "qcow2", "write -P 1 0 64k", "write -z 1M 64k", "write -P 2 4M 1M", "discard 4M 64k");
        foreach (var view in s_views)
            AssertSameAsQemuImg(path, view);
    }

    [Fact]
    public void The_corrupt_flag_shows_as_in_qemu_img()
    {
        using var dir = new TempDirectory();
        string path = dir.File("x.qcow2");
        QemuImg.Create("qcow2", path, "16M");
        Qcow2Images.MarkCorrupt(path);
        foreach (var view in s_views)
            AssertSameAsQemuImg(path, view);
    }

    [Fact]
    public void Version_2_images_with_a_backing_file_show_as_in_qemu_img()
    {
        using var dir = new TempDirectory();
        Qcow2Images.Chain(dir);
        string path = dir.File("v2.qcow2");
        QemuImg.Run("create", "-q", "-f", "qcow2", "-o", "compat=0.10", "-b", "base.qcow2", "-F", "qcow2", path).EnsureSuccess("qemu-img create");
        QemuIo.RunChecked(path, "qcow2", "write -P 9 128k 64k", "write -z 0 64k");
        foreach (var view in s_views)
            AssertSameAsQemuImg(path, view);
    }

    [Fact]
    public void Metadata_preallocated_images_show_as_in_qemu_img()
    {
        using var dir = new TempDirectory();
        string path = dir.File("x.qcow2"), ext = dir.File("ext.qcow2");
        QemuImg.Create("qcow2", path, "8M", "preallocation=metadata");
        QemuImg.Create("qcow2", ext, "8M", "preallocation=metadata,extended_l2=on");
        QemuIo.RunChecked(path, "qcow2", "write -P 1 1M 64k");
        QemuIo.RunChecked(ext, "qcow2", "write -P 1 1M 4k");
        foreach (var view in s_views)
        {
            AssertSameAsQemuImg(path, view);
            AssertSameAsQemuImg(ext, view);
        }
    }

    [Fact]
    public void Check_exit_code_for_a_format_without_checks_equals_qemu_img()
    {
        using var dir = new TempDirectory();
        string path = dir.File("x.qcow2");
        QemuImg.Create("qcow2", path, "1M");
        Assert.Equal(63, AssertSameAsQemuImg(path, "check", "-f", "raw").ExitCode);
    }

    private static ProcessResult AssertSameAsQemuImg(string path, params string[] args)
    {
        var q = QemuImg.Run([.. args, path]);
        var b = BlkRunner.Run([.. args, path]);
        Assert.Equal(q.Stdout, b.Stdout);
        Assert.Equal(BlkRunner.Normalize(q.Stderr), b.Stderr);
        Assert.Equal(q.ExitCode, b.ExitCode);
        return b;
    }
}
