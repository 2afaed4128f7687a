using Block.TestSupport;

namespace Block.Cli.Tests;

/// <summary><c>blk resize</c> on qcow2 images says what qemu-img resize says and leaves the image qemu-img leaves.</summary>
public class Qcow2ResizeOracleTests
{
    [Theory]
    [InlineData("64M", null, "128M")]
    [InlineData("64M", null, "+1G")]
    [InlineData("64M", null, "64M")]
    [InlineData("64M", null, "+100k")]
    [InlineData("64M", null, "--shrink", "32M")]
    [InlineData("64M", null, "--shrink", "--", "-1M")]
    [InlineData("64M", "write -P 1 0 64M", "--shrink", "32M")]
    [InlineData("2G", null, "--shrink", "100M")]
    [InlineData("3G", null, "--shrink", "2G")]
    [InlineData("3G", null, "--shrink", "3000M")]
    [InlineData("2G", "write -P 1 1G 1M", "--shrink", "600M")]
    [InlineData("2G", "write -P 1 1500M 1M", "--shrink", "1000M")]
    [InlineData("64M", "write -c -P 1 0 64k", "--shrink", "32k")]
    [InlineData("64M", null, "--preallocation=metadata", "128M")]
    [InlineData("64M", null, "--preallocation=off", "128M")]
    public void Resizes_leave_the_image_qemu_img_leaves(string size, string? io, params string[] args)
    {
        using var s = Prepared(size, io, null);
        s.AssertSameImg(["resize", .. args.Take(args.Length - 1), "@x.qcow2", args[^1]]);
        s.AssertSameBytes("x.qcow2");
        s.AssertOracleSeesSameImage("x.qcow2");
    }

    [Theory]
    [InlineData("compat=0.10", "1G")]
    [InlineData("cluster_size=4k", "--shrink", "1M")]
    [InlineData("extended_l2=on", "--preallocation=metadata", "100M")]
    [InlineData("lazy_refcounts=on", "--shrink", "1M")]
    public void Resizes_of_images_with_options_leave_the_image_qemu_img_leaves(string options, params string[] args)
    {
        using var s = Prepared("64M", "write -P 1 0 2M", options);
        s.AssertSameImg(["resize", .. args.Take(args.Length - 1), "@x.qcow2", args[^1]]);
        s.AssertSameBytes("x.qcow2");
        s.AssertOracleSeesSameImage("x.qcow2");
    }

    /// <summary>
    /// falloc and full: QEMU first moves the refcount table to the end of the file and puts the new data after it;
    /// blk allocates the data at the end of the file and keeps the table. The guest sees the same image; qemu-img check
    /// then counts one fragment more on QEMU's side, and the host offsets differ.
    /// </summary>
    [Theory]
    [InlineData("--preallocation=falloc", "80M")]
    [InlineData("--preallocation=full", "70M")]
    public void Allocating_preallocation_gives_an_image_qemu_sees_the_same(params string[] args)
    {
        using var s = Prepared("64M", "write -P 1 0 1M", null);
        s.AssertSameImg(["resize", args[0], "@x.qcow2", args[1]]);
        var check = s.Oracle("check", "@x.qcow2");
        Assert.Equal(0, check.Blk.ExitCode);
        Assert.Equal(check.Qemu.Stdout.Split(',')[0], check.Blk.Stdout.Split(',')[0]);
        var map = s.Oracle("map", "--output=json", "@x.qcow2");
        Assert.Equal(WithoutOffsets(map.Qemu.Stdout), WithoutOffsets(map.Blk.Stdout));
        Assert.Equal(0, QemuImg.Compare(s.Qemu("x.qcow2"), s.Blk("x.qcow2"), "qcow2", "qcow2"));
        var info = s.Oracle("info", "--output=json", "@x.qcow2");
        Assert.Equal(info.Qemu.Stdout.Split('\n').Where(l => !l.Contains("actual-size", StringComparison.Ordinal)),
            info.Blk.Stdout.Split('\n').Where(l => !l.Contains("actual-size", StringComparison.Ordinal)));
    }

    private static string WithoutOffsets(string mapJson) =>
        System.Text.RegularExpressions.Regex.Replace(mapJson, @", ""offset"": \d+", string.Empty);

    [Theory]
    [InlineData("32M")]
    [InlineData("--", "-1M")]
    [InlineData("0")]
    [InlineData("1000")]
    [InlineData("--shrink", "0")]
    [InlineData("--shrink", "1000")]
    [InlineData("--preallocation=bogus", "128M")]
    [InlineData("--shrink", "--preallocation=full", "32M")]
    [InlineData("abc")]
    public void Errors_match_qemu_img(params string[] args)
    {
        using var s = Prepared("64M", null, null);
        s.AssertSameImg(["resize", .. args.Take(args.Length - 1), "@x.qcow2", args[^1]]);
        s.AssertSameBytes("x.qcow2");
    }

    [Fact]
    public void Growing_past_what_the_l1_table_can_map_fails_as_in_qemu_img()
    {
        using var s = Prepared("64M", null, "cluster_size=512");
        s.AssertSameImg("resize", "@x.qcow2", "1T");
        s.AssertSameBytes("x.qcow2");
    }

    private static SideBySide Prepared(string size, string? io, string? options)
    {
        var s = new SideBySide();
        s.InBoth(d =>
        {
            QemuImg.Create("qcow2", d.File("x.qcow2"), size, options);
            if (io != null)
                QemuIo.RunChecked(d.File("x.qcow2"), "qcow2", io);
        });
        return s;
    }
}
