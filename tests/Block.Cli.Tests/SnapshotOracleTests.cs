using System.Buffers.Binary;
using System.Text.RegularExpressions;
using Block.TestSupport;

namespace Block.Cli.Tests;

/// <summary>
/// <c>blk snapshot</c> says what <c>qemu-img snapshot</c> says and leaves the image qemu-img leaves, the creation time
/// of each snapshot aside (both tools stamp the wall clock).
/// </summary>
public partial class SnapshotOracleTests
{
    private static SideBySide Prepared(string options)
    {
        var s = new SideBySide();
        s.InBoth(d =>
        {
            QemuImg.Create("qcow2", d.File("a.qcow2"), "8M", options);
            QemuIo.RunChecked(d.File("a.qcow2"), "qcow2", "write -P 1 0 1M", "write -z 2M 64k");
            QemuImg.Create("raw", d.File("r.raw"), "1M");
        });
        return s;
    }

    [Theory]
    [InlineData("compat=1.1")]
    [InlineData("compat=0.10")]
    [InlineData("cluster_size=4096,refcount_bits=4")]
    [InlineData("extended_l2=on")]
    public void A_session_of_snapshot_commands_leaves_the_image_qemu_img_leaves(string options)
    {
        using var s = Prepared(options);
        string[][] steps =
        [
            ["snapshot", "-l", "@a.qcow2"],
            ["snapshot", "-c", "s1", "@a.qcow2"],
            ["io:write -P 2 512k 1M"],
            ["snapshot", "-c", "s2", "@a.qcow2"],
            ["io:write -P 3 4M 64k"],
            ["snapshot", "-l", "@a.qcow2"],
            ["snapshot", "@a.qcow2"],
            ["snapshot", "-a", "s1", "@a.qcow2"],
            ["snapshot", "-c", "s1", "@a.qcow2"],
            ["snapshot", "-d", "s2", "@a.qcow2"],
            ["snapshot", "-a", "1", "@a.qcow2"],
            ["snapshot", "-d", "s1", "@a.qcow2"],
            ["snapshot", "-d", "nosuch", "@a.qcow2"],
            ["snapshot", "-a", "nosuch", "@a.qcow2"],
            ["snapshot", "-l", "@a.qcow2"],
            ["info", "@a.qcow2"],
            ["check", "@a.qcow2"],
        ];
        foreach (var step in steps)
        {
            if (step[0].StartsWith("io:", StringComparison.Ordinal))
            {
                foreach (var dir in new[] { s.Qemu("a.qcow2"), s.Blk("a.qcow2") })
                    QemuIo.RunChecked(dir, "qcow2", step[0][3..]);
            }
            else
            {
                var (q, b) = s.Img(step);
                SideBySide.AssertSame((Undated(q), Undated(b)));
            }
            AssertSameButDates(s, "a.qcow2", string.Join(' ', step));
        }
        Assert.Equal(0, QemuImg.Compare(s.Qemu("a.qcow2"), s.Blk("a.qcow2"), "qcow2", "qcow2"));
    }

    [Fact]
    public void QEMU_lists_applies_and_deletes_the_snapshots_blk_made_and_blk_those_QEMU_made()
    {
        using var s = Prepared("compat=1.1");
        // Each side's snapshots made by the other tool.
        Assert.Equal(0, QemuImg.Run("snapshot", "-c", "q", s.Blk("a.qcow2")).ExitCode);
        Assert.Equal(0, BlkRunner.Run("snapshot", "-c", "b", s.Qemu("a.qcow2")).ExitCode);
        QemuIo.RunChecked(s.Blk("a.qcow2"), "qcow2", "write -P 5 0 2M");
        QemuIo.RunChecked(s.Qemu("a.qcow2"), "qcow2", "write -P 5 0 2M");
        Assert.Equal(0, BlkRunner.Run("snapshot", "-a", "q", s.Blk("a.qcow2")).ExitCode);
        Assert.Equal(0, QemuImg.Run("snapshot", "-a", "b", s.Qemu("a.qcow2")).ExitCode);
        QemuIo.RunChecked(s.Blk("a.qcow2"), "qcow2", "read -P 1 0 1M", "read -P 0 1M 1M");
        QemuIo.RunChecked(s.Qemu("a.qcow2"), "qcow2", "read -P 1 0 1M", "read -P 0 1M 1M");
        Assert.Equal(0, BlkRunner.Run("snapshot", "-d", "q", s.Blk("a.qcow2")).ExitCode);
        Assert.Equal(0, QemuImg.Run("snapshot", "-d", "b", s.Qemu("a.qcow2")).ExitCode);
        SideBySide.AssertSame(s.Oracle("check", "@a.qcow2"));
        AssertSameButDates(s, "a.qcow2");
    }

    [Fact]
    public void A_snapshot_that_would_overflow_one_bit_refcounts_is_refused_with_qemu_img_s_message_and_leaks_nothing()
    {
        using var s = Prepared("cluster_size=4096,refcount_bits=1");
        var (q, b) = s.Img("snapshot", "-c", "s1", "@a.qcow2");
        SideBySide.AssertSame((q, b));
        Assert.Equal(1, b.ExitCode);
        // QEMU leaks the cluster of the L1 copy it wrote before failing; blk checks the counts before writing anything.
        Assert.Equal(3, s.Oracle("check", "@a.qcow2").Qemu.ExitCode);
        var check = QemuImg.Run("check", s.Blk("a.qcow2"));
        Assert.Equal(0, check.ExitCode);
        Assert.Equal(0, QemuImg.Compare(s.Qemu("a.qcow2"), s.Blk("a.qcow2"), "qcow2", "qcow2"));
    }

    public static TheoryData<string[]> Refusals() => new()
    {
        new[] { "snapshot" },
        new[] { "snapshot", "-c", "s", "-d", "s", "@a.qcow2" },
        new[] { "snapshot", "-c", "s", "@a.qcow2", "@a.qcow2" },
        new[] { "snapshot", "-c", "s", "@r.raw" },
        new[] { "snapshot", "-l", "@r.raw" },
        new[] { "snapshot", "-a", "s", "@r.raw" },
        new[] { "snapshot", "-c", "s", "@nosuch.qcow2" },
        new[] { "snapshot", "-c", "s", "-U", "@a.qcow2" },
        new[] { "snapshot", "-l", "-U", "@a.qcow2" },
        new[] { "snapshot", "-x", "@a.qcow2" },
    };

    [Theory]
    [MemberData(nameof(Refusals))]
    public void Refusals_are_qemu_img_s(string[] args)
    {
        using var s = Prepared("compat=1.1");
        var (q, b) = s.Img(args);
        SideBySide.AssertSame((Undated(q), Undated(b)));
        s.AssertSameBytes("a.qcow2");
        s.AssertSameBytes("r.raw");
    }

    /// <summary>The output with the dates and the disk usage (how the host file system allocated) left out.</summary>
    private static ProcessResult Undated(ProcessResult r) =>
        r with { Stdout = DiskSize().Replace(Date().Replace(r.Stdout, "DATE"), "disk size: SIZE") };

    [GeneratedRegex(@"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")]
    private static partial Regex Date();

    [GeneratedRegex(@"disk size: .*")]
    private static partial Regex DiskSize();

    /// <summary>The two images are byte for byte the same once the snapshot table's creation times are zeroed.</summary>
    private static void AssertSameButDates(SideBySide s, string name, string after = "")
    {
        var q = File.ReadAllBytes(s.Qemu(name));
        var b = File.ReadAllBytes(s.Blk(name));
        ZeroDates(q);
        ZeroDates(b);
        Assert.True(q.Length == b.Length, $"{name} is {b.Length} bytes long, QEMU's {q.Length}, after {after}");
        int first = q.AsSpan().CommonPrefixLength(b);
        Assert.True(first == q.Length, $"{name} differs first at byte {first} after {after}");
    }

    private static void ZeroDates(byte[] image)
    {
        uint count = BinaryPrimitives.ReadUInt32BigEndian(image.AsSpan(60));
        long pos = (long)BinaryPrimitives.ReadUInt64BigEndian(image.AsSpan(64));
        for (uint i = 0; i < count; i++)
        {
            var entry = image.AsSpan((int)pos);
            int idSize = BinaryPrimitives.ReadUInt16BigEndian(entry[12..]);
            int nameSize = BinaryPrimitives.ReadUInt16BigEndian(entry[14..]);
            int extra = (int)BinaryPrimitives.ReadUInt32BigEndian(entry[36..]);
            entry.Slice(16, 8).Clear();
            pos += (40 + extra + idSize + nameSize + 7) / 8 * 8;
        }
    }
}
