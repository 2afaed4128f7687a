using Block.TestSupport;

namespace Block.Cli.Tests;

/// <summary><c>blk commit</c> says what qemu-img commit says and leaves every image of the chain as qemu-img leaves it.</summary>
public class CommitOracleTests
{
    [Theory]
    [InlineData("@top.qcow2")]
    [InlineData("-d", "@top.qcow2")]
    [InlineData("-q", "@top.qcow2")]
    [InlineData("@mid.qcow2")]
    [InlineData("-b", "base.qcow2", "@top.qcow2")]
    [InlineData("-b", "@base.qcow2", "@top.qcow2")]
    [InlineData("-b", "./base.qcow2", "@top.qcow2")]
    [InlineData("-b", "mid.qcow2", "@top.qcow2")]
    [InlineData("-f", "qcow2", "-t", "writethrough", "@top.qcow2")]
    [InlineData("-r", "1G", "@top.qcow2")]
    [InlineData("--image-opts", "driver=qcow2,file.filename=@top.qcow2")]
    public void Commits_leave_the_chain_qemu_img_leaves(params string[] args)
    {
        using var s = new SideBySide();
        s.InBoth(BackingChains.Build);
        s.AssertSameImg(["commit", .. args]);
        BackingChains.AssertSameImages(s, BackingChains.Qcow2Names);
    }

    [Fact]
    public void Commit_into_the_backing_file_writes_the_base_qemu_img_writes_and_empties_the_top()
    {
        using var s = new SideBySide();
        s.InBoth(BackingChains.Build);
        s.AssertSameImg("commit", "@top.qcow2");
        // mid grew to top's 128 MiB and holds what top held; base and the copied layers are byte for byte QEMU's.
        s.AssertSameBytes("mid.qcow2");
        s.AssertSameBytes("base.qcow2");
        var map = s.Oracle("map", "--output=json", "-f", "qcow2", "@top.qcow2");
        Assert.DoesNotContain("\"depth\": 0", map.Blk.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Commit_with_b_keeps_the_top_and_the_images_between()
    {
        using var s = new SideBySide();
        s.InBoth(BackingChains.Build);
        s.AssertSameImg("commit", "-b", "base.qcow2", "@top.qcow2");
        s.AssertSameBytes("top.qcow2");
        s.AssertSameBytes("mid.qcow2");
        // What top and mid showed is now base's own, including mid's zero cluster over base's data at 10 MiB.
        var io = s.Io("-f", "qcow2", "-c", "read -P 0 0 64k", "-c", "read -P 3 1M 64k", "-c", "read -P 0 10M 64k", "-c", "read -P 4 100M 4k", "@base.qcow2");
        SideBySide.AssertSame(io);
        Assert.DoesNotContain("Pattern verification failed", io.Blk.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Commit_past_a_shorter_intermediate_writes_zeroes_over_the_base_data_it_hid()
    {
        using var s = new SideBySide();
        s.InBoth(dir =>
        {
            QemuImg.Create("qcow2", dir.File("base.qcow2"), "64M");
            QemuIo.RunChecked(dir.File("base.qcow2"), "qcow2", "write -P 1 0 64M");
            BackingChains.Overlay(dir, "mid.qcow2", "base.qcow2", "32M");
            BackingChains.Overlay(dir, "top.qcow2", "mid.qcow2", "64M");
            QemuIo.RunChecked(dir.File("top.qcow2"), "qcow2", "write -P 2 1M 64k");
        });
        s.AssertSameImg("commit", "-b", "base.qcow2", "@top.qcow2");
        BackingChains.AssertSameImages(s, "base.qcow2", "mid.qcow2", "top.qcow2");
        var io = s.Io("-f", "qcow2", "-c", "read -P 1 0 1M", "-c", "read -P 2 1M 64k", "-c", "read -P 0 32M 32M", "@base.qcow2");
        SideBySide.AssertSame(io);
        Assert.DoesNotContain("Pattern verification failed", io.Blk.Stdout, StringComparison.Ordinal);
    }

    [Fact]
    public void Commit_grows_a_smaller_raw_base_to_the_top_s_size()
    {
        using var s = new SideBySide();
        s.InBoth(dir =>
        {
            QemuImg.Create("raw", dir.File("base.img"), "1M");
            QemuIo.RunChecked(dir.File("base.img"), "raw", "write -P 1 0 1M");
            BackingChains.Overlay(dir, "top.qcow2", "base.img", "4M", backingFormat: "raw");
            QemuIo.RunChecked(dir.File("top.qcow2"), "qcow2", "write -P 2 512k 1M", "write -z 2M 64k", "write -P 3 3M 4k");
        });
        s.AssertSameImg("commit", "@top.qcow2");
        s.AssertSameBytes("base.img");
        Assert.Equal(4L << 20, new FileInfo(s.Blk("base.img")).Length);
        BackingChains.AssertSameImages(s, "top.qcow2");
    }

    [Fact]
    public void Commit_of_a_top_the_format_cannot_empty_keeps_its_data_and_succeeds()
    {
        using var s = new SideBySide();
        s.InBoth(dir =>
        {
            QemuImg.Create("vmdk", dir.File("base.vmdk"), "1M");
            BackingChains.Overlay(dir, "top.vmdk", "base.vmdk", null, backingFormat: "vmdk", format: "vmdk");
            QemuIo.RunChecked(dir.File("top.vmdk"), "vmdk", "write -P 1 0 64k");
        });
        s.AssertSameImg("commit", "@top.vmdk");
        Assert.Equal(0, QemuImg.Compare(s.Qemu("base.vmdk"), s.Blk("base.vmdk"), "vmdk", "vmdk"));
        var map = s.Oracle("map", "--output=json", "-f", "vmdk", "@top.vmdk");
        Assert.Equal(BackingChains.Allocation(map.Qemu.Stdout), BackingChains.Allocation(map.Blk.Stdout));
    }

    [Fact]
    public void A_base_that_cannot_grow_fails_the_job_as_qemu_img_does()
    {
        using var s = new SideBySide();
        s.InBoth(dir =>
        {
            QemuImg.Create("vmdk", dir.File("base.vmdk"), "1M");
            BackingChains.Overlay(dir, "top.qcow2", "base.vmdk", "2M", backingFormat: "vmdk");
            QemuIo.RunChecked(dir.File("top.qcow2"), "qcow2", "write -P 1 0 2M");
        });
        Assert.Equal(1, s.AssertSameImg("commit", "@top.qcow2"));
        s.AssertSameBytes("top.qcow2");
    }

    [Fact]
    public void Progress_runs_from_zero_to_a_hundred_before_the_message()
    {
        using var s = new SideBySide();
        s.InBoth(BackingChains.Build);
        var r = s.Img("commit", "-p", "@top.qcow2");
        Assert.Equal(r.Qemu.ExitCode, r.Blk.ExitCode);
        Assert.Equal(r.Qemu.Stderr, r.Blk.Stderr);
        Assert.Equal("    (0.00/100%)\r…    (100.00/100%)\r\nImage committed.\n", BackingChains.CollapsedProgress(r.Blk.Stdout));
        Assert.Equal(BackingChains.CollapsedProgress(r.Qemu.Stdout), BackingChains.CollapsedProgress(r.Blk.Stdout));
        BackingChains.AssertSameImages(s, BackingChains.Qcow2Names);
    }

    [Fact]
    public void A_rate_limit_spreads_the_copy_over_time()
    {
        using var dir = new TempDirectory();
        QemuImg.Create("qcow2", dir.File("base.qcow2"), "8M");
        BackingChains.Overlay(dir, "top.qcow2", "base.qcow2", null);
        QemuIo.RunChecked(dir.File("top.qcow2"), "qcow2", "write -P 1 0 3M");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var r = BlkRunner.Run("commit", "-r", "1M", dir.File("top.qcow2"));
        Assert.Equal((0, "Image committed.\n"), (r.ExitCode, r.Stdout));
        // Three 1 MiB pieces at 1 MiB/s: the first goes at once, the third starts after two seconds.
        Assert.InRange(clock.Elapsed.TotalSeconds, 1.8, 60);
        QemuIo.RunChecked(dir.File("base.qcow2"), "qcow2", "read -P 1 0 3M");
    }

    [Theory]
    [InlineData("@lone.qcow2")]
    [InlineData("-p", "@lone.qcow2")]
    [InlineData("-b", "nothere", "@top.qcow2")]
    [InlineData("-p", "-b", "nothere", "@top.qcow2")]
    [InlineData("-b", "top.qcow2", "@top.qcow2")]
    [InlineData("-b", "other.qcow2", "@top.qcow2")]
    [InlineData("-f", "raw", "@top.qcow2")]
    [InlineData("@nothere.qcow2")]
    [InlineData("-p", "@nothere.qcow2")]
    [InlineData("-r", "1x", "@top.qcow2")]
    [InlineData("-r", "-5", "@top.qcow2")]
    [InlineData("-t", "bogus", "@top.qcow2")]
    [InlineData("-U", "@top.qcow2")]
    [InlineData("--force-share", "@top.qcow2")]
    [InlineData("--image-opts", "-f", "qcow2", "@top.qcow2")]
    [InlineData("-d")]
    [InlineData("@top.qcow2", "@mid.qcow2")]
    public void Errors_are_reported_as_qemu_img_reports_them_and_change_nothing(params string[] args)
    {
        using var s = new SideBySide();
        s.InBoth(BackingChains.Build);
        Assert.NotEqual(0, s.AssertSameImg(["commit", .. args]));
        BackingChains.AssertSameBytes(s);
    }
}
