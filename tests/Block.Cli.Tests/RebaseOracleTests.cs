using Block.TestSupport;

namespace Block.Cli.Tests;

/// <summary>
/// <c>blk rebase</c> says what qemu-img rebase says and leaves the image qemu-img leaves, byte for byte: the same
/// sectors copied, the same clusters allocated in the same order, the same header.
/// </summary>
public class RebaseOracleTests
{
    [Theory]
    [InlineData("-b", "base.qcow2", "-F", "qcow2", "@top.qcow2")]
    [InlineData("-b", "mid.qcow2", "-F", "qcow2", "@top.qcow2")]
    [InlineData("-b", "other.qcow2", "-F", "qcow2", "@top.qcow2")]
    [InlineData("-b", "./other.qcow2", "-F", "qcow2", "@top.qcow2")]
    [InlineData("-b", "@other.qcow2", "-F", "qcow2", "@top.qcow2")]
    [InlineData("-b", "raw.img", "-F", "raw", "@top.qcow2")]
    [InlineData("-b", "other.qcow2", "-F", "raw", "@top.qcow2")]
    [InlineData("-b", "", "@top.qcow2")]
    [InlineData("-b", "", "-F", "qcow2", "@mid.qcow2")]
    [InlineData("-b", "other.qcow2", "-F", "qcow2", "@mid.qcow2")]
    [InlineData("-b", "base.qcow2", "-F", "qcow2", "@lone.qcow2")]
    [InlineData("-q", "-t", "writethrough", "-T", "none", "-b", "other.qcow2", "-F", "qcow2", "@top.qcow2")]
    [InlineData("-U", "-b", "other.qcow2", "-F", "qcow2", "@top.qcow2")]
    [InlineData("-f", "qcow2", "-b", "other.qcow2", "-F", "qcow2", "@top.qcow2")]
    [InlineData("--image-opts", "-b", "other.qcow2", "-F", "qcow2", "driver=qcow2,file.filename=@top.qcow2")]
    [InlineData("-u", "-b", "other.qcow2", "-F", "qcow2", "@top.qcow2")]
    [InlineData("-u", "-b", "", "@top.qcow2")]
    [InlineData("-u", "@top.qcow2")]
    [InlineData("-u", "-F", "qcow2", "@top.qcow2")]
    public void Rebases_leave_the_image_qemu_img_leaves(params string[] args)
    {
        using var s = new SideBySide();
        s.InBoth(BackingChains.Build);
        s.AssertSameImg(["rebase", .. args]);
        BackingChains.AssertSameBytes(s);
        BackingChains.AssertSameImages(s, BackingChains.Qcow2Names);
    }

    [Theory]
    [InlineData("-p", "-b", "other.qcow2", "-F", "qcow2", "@top.qcow2")]
    [InlineData("-p", "-b", "", "@mid.qcow2")]
    [InlineData("-p", "-u", "-b", "base.qcow2", "-F", "qcow2", "@top.qcow2")]
    [InlineData("-p", "-q", "-b", "base.qcow2", "-F", "qcow2", "@top.qcow2")]
    [InlineData("-p", "-b", "base.qcow2", "-F", "qcow2", "@small.qcow2")]
    [InlineData("-p", "-b", "other.qcow2", "-F", "qcow2", "@full.qcow2")]
    public void Progress_counts_chunks_as_qemu_img_does(params string[] args)
    {
        using var s = new SideBySide();
        s.InBoth(dir =>
        {
            BackingChains.Build(dir);
            BackingChains.Overlay(dir, "small.qcow2", "mid.qcow2", "5M");
            BackingChains.Overlay(dir, "full.qcow2", "mid.qcow2", "3M");
            QemuIo.RunChecked(dir.File("full.qcow2"), "qcow2", "write -P 1 0 3M");
        });
        s.AssertSameImg(["rebase", .. args]);
        s.AssertSameBytes("small.qcow2");
        s.AssertSameBytes("full.qcow2");
        BackingChains.AssertSameBytes(s);
    }

    /// <summary>qemu-img's manual: a copy of a base that has since changed becomes a thin overlay holding the changes.</summary>
    [Fact]
    public void Rebasing_an_overlay_of_a_changed_copy_onto_the_original_keeps_only_the_differences()
    {
        using var s = new SideBySide();
        s.InBoth(dir =>
        {
            QemuImg.Create("qcow2", dir.File("base.qcow2"), "16M");
            QemuIo.RunChecked(dir.File("base.qcow2"), "qcow2", "write -P 1 0 4M", "write -P 2 8M 1M");
            File.Copy(dir.File("base.qcow2"), dir.File("modified.qcow2"));
            QemuIo.RunChecked(dir.File("modified.qcow2"), "qcow2", "write -P 3 1M 512", "write -z 8M 64k", "write -P 4 12M 128k");
            BackingChains.Overlay(dir, "diff.qcow2", "modified.qcow2", null);
        });
        s.AssertSameImg("rebase", "-b", "base.qcow2", "-F", "qcow2", "@diff.qcow2");
        s.AssertSameBytes("diff.qcow2");
        BackingChains.AssertSameImages(s, "diff.qcow2");
        Assert.Equal(0, QemuImg.Compare(s.Blk("diff.qcow2"), s.Blk("modified.qcow2"), "qcow2", "qcow2"));
        var map = s.Oracle("map", "--output=json", "-f", "qcow2", "@diff.qcow2");
        Assert.Equal(3, map.Blk.Stdout.Split('\n').Count(l => l.Contains("\"depth\": 0", StringComparison.Ordinal)));
    }

    [Fact]
    public void Unsafe_rebase_records_a_backing_file_that_does_not_exist()
    {
        using var s = new SideBySide();
        s.InBoth(BackingChains.Build);
        s.AssertSameImg("rebase", "-u", "-b", "nothere", "-F", "qcow2", "@top.qcow2");
        BackingChains.AssertSameBytes(s);
        SideBySide.AssertSame(s.Oracle("info", "--backing-chain", "@top.qcow2"));
    }

    [Fact]
    public void Safe_rebase_needs_the_old_backing_file_and_unsafe_rebase_repairs_a_missing_one()
    {
        using var s = new SideBySide();
        s.InBoth(dir =>
        {
            BackingChains.Build(dir);
            QemuImg.Run("rebase", "-u", "-b", "moved.qcow2", "-F", "qcow2", dir.File("top.qcow2")).EnsureSuccess("qemu-img rebase");
        });
        Assert.Equal(1, s.AssertSameImg("rebase", "-b", "mid.qcow2", "-F", "qcow2", "@top.qcow2"));
        s.AssertSameImg("rebase", "-u", "-b", "mid.qcow2", "-F", "qcow2", "@top.qcow2");
        s.AssertSameBytes("top.qcow2");
        BackingChains.AssertSameImages(s, "top.qcow2");
    }

    /// <summary>Without <c>-F</c> qemu-img 7.2 copies (probing the new backing file) and then refuses to record it.</summary>
    [Theory]
    [InlineData("-b", "other.qcow2", "@top.qcow2")]
    [InlineData("-p", "-b", "other.qcow2", "@top.qcow2")]
    [InlineData("-u", "-b", "other.qcow2", "@top.qcow2")]
    public void A_missing_backing_format_fails_after_the_copy_as_qemu_img_does(params string[] args)
    {
        using var s = new SideBySide();
        s.InBoth(BackingChains.Build);
        Assert.Equal(1, s.AssertSameImg(["rebase", .. args]));
        BackingChains.AssertSameBytes(s);
    }

    [Theory]
    [InlineData("@top.qcow2")]
    [InlineData("-F", "qcow2", "@top.qcow2")]
    [InlineData("-b", "other.qcow2", "-F", "qcow2")]
    [InlineData("-b", "other.qcow2", "-F", "qcow2", "@top.qcow2", "@mid.qcow2")]
    [InlineData("-b", "nothere", "-F", "qcow2", "@top.qcow2")]
    [InlineData("-p", "-b", "nothere", "-F", "qcow2", "@top.qcow2")]
    [InlineData("-b", "top.qcow2", "-F", "qcow2", "@top.qcow2")]
    [InlineData("-b", "other.qcow2", "-F", "bogus", "@top.qcow2")]
    [InlineData("-u", "-b", "other.qcow2", "-F", "bogus", "@top.qcow2")]
    [InlineData("-b", "other.qcow2", "-F", "qcow2", "@nothere.qcow2")]
    [InlineData("-p", "-b", "other.qcow2", "-F", "qcow2", "@nothere.qcow2")]
    [InlineData("-f", "raw", "-b", "other.qcow2", "-F", "qcow2", "@top.qcow2")]
    [InlineData("-f", "raw", "-b", "", "@top.qcow2")]
    [InlineData("-f", "raw", "-b", "other.qcow2", "@top.qcow2")]
    [InlineData("-b", "other.qcow2", "-F", "qcow2", "@raw.img")]
    [InlineData("-c", "-u", "-b", "other.qcow2", "-F", "qcow2", "@top.qcow2")]
    [InlineData("-t", "bogus", "-b", "other.qcow2", "@top.qcow2")]
    [InlineData("-p", "-T", "bogus", "-b", "other.qcow2", "@top.qcow2")]
    [InlineData("--image-opts", "-f", "qcow2", "-b", "other.qcow2", "-F", "qcow2", "@top.qcow2")]
    public void Errors_are_reported_as_qemu_img_reports_them(params string[] args)
    {
        using var s = new SideBySide();
        s.InBoth(BackingChains.Build);
        Assert.NotEqual(0, s.AssertSameImg(["rebase", .. args]));
        BackingChains.AssertSameBytes(s);
    }
}
