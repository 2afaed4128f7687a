using Block.TestSupport;

namespace Block.Cli.Tests;

/// <summary><c>blk create</c> writes what <c>qemu-img create</c> writes and says what it says.</summary>
public class CreateTests
{
    [Theory]
    [InlineData("0")]
    [InlineData("1")]
    [InlineData("1000")]
    [InlineData("2k")]
    [InlineData("1.1k")]
    [InlineData("10000")]
    [InlineData("16M")]
    [InlineData("1.5G")]
    [InlineData("0x10000")]
    public void Raw_images_match_qemu_img_in_size_map_and_message(string size)
    {
        using var dir = new TempDirectory();
        string ours = dir.File("a.raw"), theirs = dir.File("b.raw");
        var q = QemuImg.Run("create", "-f", "raw", theirs, size);
        var b = BlkRunner.Run("create", "-f", "raw", ours, size);
        Assert.Equal(q.ExitCode, b.ExitCode);
        Assert.Equal(q.Stdout.Replace("b.raw", "a.raw"), b.Stdout);
        Assert.Equal(new FileInfo(theirs).Length, new FileInfo(ours).Length);
        Assert.Equal(QemuImg.MapJsonText(theirs), QemuImg.MapJsonText(ours));
    }

    [Theory]
    [InlineData("falloc")]
    [InlineData("full")]
    [InlineData("off")]
    public void Preallocation_modes_allocate_like_qemu_img(string mode)
    {
        using var dir = new TempDirectory();
        string ours = dir.File("a.raw"), theirs = dir.File("b.raw");
        var q = QemuImg.Run("create", "-f", "raw", "-o", $"preallocation={mode}", theirs, "1M");
        var b = BlkRunner.Run("create", "-f", "raw", "-o", $"preallocation={mode}", ours, "1M");
        Assert.Equal(q.Stdout.Replace("b.raw", "a.raw"), b.Stdout);
        Assert.Equal(QemuImg.MapJsonText(theirs), QemuImg.MapJsonText(ours));
        Assert.Equal(QemuImg.Info(theirs)["actual-size"]!.GetValue<long>(), QemuImg.Info(ours)["actual-size"]!.GetValue<long>());
    }

    [Theory]
    [InlineData("-f", "raw", "x.raw", "12x")]
    [InlineData("-f", "raw", "x.raw", "1.5")]
    [InlineData("-f", "raw", "x.raw", "8E")]
    [InlineData("-f", "raw", "x.raw")]
    [InlineData("-f", "bogus", "x.raw", "1M")]
    [InlineData("-f", "raw", "-o", "bogus=1", "x.raw", "1M")]
    [InlineData("-f", "raw", "-o", "cluster_size=64k", "x.raw", "1M")]
    [InlineData("-f", "raw", "-o", "size=2M", "x.raw", "1M")]
    [InlineData("-f", "raw", "-o", "help")]
    [InlineData("-f", "raw", "-o", "help", "x.raw", "1M")]
    [InlineData("-f", "raw", "-o", "preallocation=bogus", "x.raw", "1M")]
    [InlineData("x.raw", "1M", "extra")]
    [InlineData]
    public void Messages_and_exit_codes_match_qemu_img(params string[] args)
    {
        using var dir = new TempDirectory();
        using var dir2 = new TempDirectory();
        var q = QemuImg.Run(["create", .. args], dir2.Path);
        var b = InfoAndMapOracleTests.RunIn(dir, ["create", .. args]);
        Assert.Equal(q.ExitCode, b.ExitCode);
        Assert.Equal(q.Stdout, b.Stdout);
        Assert.Equal(BlkRunner.Normalize(q.Stderr), b.Stderr);
        Assert.Equal(File.Exists(dir2.File("x.raw")), File.Exists(dir.File("x.raw")));
    }

    [Fact]
    public void Creating_over_an_existing_file_replaces_it()
    {
        using var dir = new TempDirectory();
        string path = RawImages.Sparse(dir, "x.raw", 4 << 20, 1 << 20, 4096);
        Assert.Equal(0, BlkRunner.Run("create", "-q", "-f", "raw", path, "1M").ExitCode);
        Assert.Equal(1 << 20, new FileInfo(path).Length);
        Assert.Equal(0, QemuIo.Run(path, "raw", "read -P 0 0 1M").ExitCode);
    }
}
