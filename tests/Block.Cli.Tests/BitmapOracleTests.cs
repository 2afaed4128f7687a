using System.Text.RegularExpressions;
using Block.TestSupport;

namespace Block.Cli.Tests;

/// <summary>
/// <c>blk bitmap</c> and bitmaps in <c>blk info</c>, <c>check</c>, <c>resize</c> and <c>io</c>: the same output, exit
/// code and resulting image bytes as qemu-img 7.2 and qemu-io on twin copies. QEMU names nodes <c>#block</c> plus a
/// counter and two random digits; those are compared as <c>#blockN</c>.
/// </summary>
public partial class BitmapOracleTests
{
    /// <summary>
    /// Twin directories holding a.qcow2 (64 MiB, bitmap b0 recording since a write at 0), s.qcow2 (bitmap sb of 512
    /// bytes with writes at 0 and 5 MiB), u.qcow2 (32 MiB), big.qcow2 (4 TiB), v2.qcow2 (compat 0.10) and r.raw.
    /// </summary>
    private static SideBySide Prepared()
    {
        var s = new SideBySide();
        s.InBoth(d =>
        {
            QemuImg.Create("qcow2", d.File("a.qcow2"), "64M");
            QemuImg.Run("bitmap", "--add", d.File("a.qcow2"), "b0").EnsureSuccess("qemu-img bitmap");
            QemuIo.RunChecked(d.File("a.qcow2"), "qcow2", "write 0 64k");
            QemuImg.Create("qcow2", d.File("s.qcow2"), "64M");
            QemuImg.Run("bitmap", "--add", "-g", "512", d.File("s.qcow2"), "sb").EnsureSuccess("qemu-img bitmap");
            QemuIo.RunChecked(d.File("s.qcow2"), "qcow2", "write 0 1k", "write 5M 3k");
            QemuImg.Create("qcow2", d.File("u.qcow2"), "32M");
            QemuImg.Create("qcow2", d.File("big.qcow2"), "4T");
            QemuImg.Create("qcow2", d.File("v2.qcow2"), "64M", "compat=0.10");
            QemuImg.Create("raw", d.File("r.raw"), "64M");
        });
        return s;
    }

    private static readonly string[] s_images = ["a.qcow2", "s.qcow2", "u.qcow2", "big.qcow2", "v2.qcow2", "r.raw"];

    private static void AssertSame((ProcessResult Qemu, ProcessResult Blk) r) =>
        SideBySide.AssertSame((Unnamed(r.Qemu), Unnamed(r.Blk)));

    private static ProcessResult Unnamed(ProcessResult r) =>
        r with { Stdout = NodeName().Replace(r.Stdout, "#blockN"), Stderr = NodeName().Replace(r.Stderr, "#blockN") };

    [GeneratedRegex(@"#block\d+")]
    private static partial Regex NodeName();

    private static void AssertSameEverywhere(SideBySide s, params string[] args)
    {
        AssertSame(s.Img(args));
        foreach (var image in s_images)
            s.AssertSameBytes(image);
    }

    public static TheoryData<string[]> Actions() => new()
    {
        new[] { "bitmap", "--add", "@a.qcow2", "b1" },
        new[] { "bitmap", "--add", "@a.qcow2", "b0" },
        new[] { "bitmap", "--remove", "@a.qcow2", "b0" },
        new[] { "bitmap", "--remove", "@a.qcow2", "nope" },
        new[] { "bitmap", "--clear", "@a.qcow2", "b0" },
        new[] { "bitmap", "--clear", "@a.qcow2", "nope" },
        new[] { "bitmap", "--disable", "@a.qcow2", "b0" },
        new[] { "bitmap", "--enable", "--disable", "--enable", "@a.qcow2", "b0" },
        new[] { "bitmap", "--add", "-g", "512", "--disable", "@a.qcow2", "b1" },
        new[] { "bitmap", "--add", "--granularity", "2G", "@a.qcow2", "b1" },
        new[] { "bitmap", "--add", "-g", "0", "@a.qcow2", "b1" },
        new[] { "bitmap", "--add", "-g", "256", "@a.qcow2", "b1" },
        new[] { "bitmap", "--add", "-g", "1000", "@a.qcow2", "b1" },
        new[] { "bitmap", "--add", "-g", "4G", "@a.qcow2", "b1" },
        new[] { "bitmap", "--add", "-g", "6G", "@a.qcow2", "b1" },
        new[] { "bitmap", "--add", "-g", "abc", "@a.qcow2", "b1" },
        new[] { "bitmap", "--add", "@a.qcow2", "" },
        new[] { "bitmap", "--add", "@a.qcow2", new string('x', 1023) },
        new[] { "bitmap", "--add", "@a.qcow2", new string('x', 1024) },
        new[] { "bitmap", "--add", "--add", "@a.qcow2", "b1" },
        new[] { "bitmap", "--remove", "--clear", "@a.qcow2", "b0" },
        new[] { "bitmap", "--add", "--merge", "b0", "@a.qcow2", "m" },
        new[] { "bitmap", "--add", "--merge", "nope", "@a.qcow2", "m" },
        new[] { "bitmap", "--merge", "b0", "--add", "@a.qcow2", "m" },
        new[] { "bitmap", "--add", "@a.qcow2", "m", "--merge", "sb", "-b", "@s.qcow2" },
        new[] { "bitmap", "--add", "@a.qcow2", "m", "--merge", "sb", "-b", "@s.qcow2", "-F", "qcow2" },
        new[] { "bitmap", "--add", "@a.qcow2", "m", "--merge", "sb", "--source-file", "@s.qcow2", "--source-format", "raw" },
        new[] { "bitmap", "--add", "@a.qcow2", "m", "--merge", "nope", "-b", "@s.qcow2" },
        new[] { "bitmap", "--add", "@a.qcow2", "m", "--merge", "sb", "-b", "@nofile.qcow2" },
        new[] { "bitmap", "--add", "@u.qcow2", "m", "--merge", "sb", "-b", "@s.qcow2" },
        new[] { "bitmap", "--merge", "sb", "-b", "@s.qcow2", "--add", "@s.qcow2", "m" },
        new[] { "bitmap", "--add", "-g", "1M", "--merge", "sb", "@s.qcow2", "m" },
        new[] { "bitmap", "--add", "-g", "512", "@big.qcow2", "m" },
        new[] { "bitmap", "--add", "-g", "1k", "@big.qcow2", "m" },
        new[] { "bitmap", "--add", "@v2.qcow2", "m" },
        new[] { "bitmap", "--add", "@r.raw", "m" },
        new[] { "bitmap", "--add", "-f", "raw", "@r.raw", "m" },
        new[] { "bitmap", "--add", "--image-opts", "driver=qcow2,file.filename=@a.qcow2", "m" },
        new[] { "bitmap", "--add", "--image-opts", "-f", "qcow2", "@a.qcow2", "m" },
        new[] { "bitmap", "--add", "--object", "secret,id=s0,data=x", "@a.qcow2", "m" },
        new[] { "bitmap", "--add", "@nofile.qcow2", "m" },
    };

    [Theory]
    [MemberData(nameof(Actions))]
    public void Bitmap_actions_say_what_qemu_img_says_and_leave_the_same_images(string[] args)
    {
        using var s = Prepared();
        AssertSameEverywhere(s, args);
        var (q, b) = s.Img("info", "@a.qcow2");
        AssertSame((WithoutDiskSize(q), WithoutDiskSize(b)));
    }

    public static TheoryData<string[]> UsageErrors() => new()
    {
        new[] { "bitmap" },
        new[] { "bitmap", "@a.qcow2", "b0" },
        new[] { "bitmap", "--add" },
        new[] { "bitmap", "--add", "@a.qcow2" },
        new[] { "bitmap", "--add", "@a.qcow2", "b0", "extra" },
        new[] { "bitmap", "-g", "1k", "--clear", "@a.qcow2", "b0" },
        new[] { "bitmap", "-F", "raw", "--add", "@a.qcow2", "b0" },
        new[] { "bitmap", "-b", "@s.qcow2", "--add", "@a.qcow2", "b0" },
        new[] { "bitmap", "-F", "raw", "-b", "x", "--clear" },
        new[] { "bitmap", "--image-opts", "-f", "qcow2", "--add" },
        new[] { "bitmap", "-q", "--add", "@a.qcow2", "b0" },
        new[] { "bitmap", "-U", "--add", "@a.qcow2", "b0" },
        new[] { "bitmap", "--force-share", "--add", "@a.qcow2", "b0" },
        new[] { "bitmap", "--add", "-g" },
        new[] { "bitmap", "--add", "--merge" },
        new[] { "bitmap", "--frob", "@a.qcow2", "b0" },
    };

    [Theory]
    [MemberData(nameof(UsageErrors))]
    public void Usage_errors_are_qemu_img_bitmaps(string[] args)
    {
        using var s = Prepared();
        AssertSameEverywhere(s, args);
    }

    [Fact]
    public void A_session_of_commands_keeps_both_images_identical()
    {
        using var s = Prepared();
        string[][] steps =
        [
            ["bitmap", "--add", "-g", "512", "@a.qcow2", "fine"],
            ["bitmap", "--add", "@a.qcow2", "m", "--merge", "sb", "-b", "@s.qcow2"],
            ["bitmap", "--disable", "@a.qcow2", "b0"],
            ["resize", "@a.qcow2", "128M"],
            ["bitmap", "--clear", "@a.qcow2", "m"],
            ["resize", "--shrink", "@a.qcow2", "16M"],
            ["bitmap", "--remove", "@a.qcow2", "fine"],
            ["check", "-r", "all", "@a.qcow2"],
            ["check", "@a.qcow2"],
            ["check", "--output=json", "@a.qcow2"],
            ["info", "--output=json", "@a.qcow2"],
        ];
        foreach (var step in steps)
        {
            var (q, b) = s.Img(step);
            AssertSame((WithoutDiskSize(q), WithoutDiskSize(b)));
            s.AssertSameBytes("a.qcow2");
        }
        AssertSame(s.Io("-c", "write 1M 64k", "-c", "write -z 2M 64k", "-c", "discard 0 64k", "@a.qcow2"));
        s.AssertSameBytes("a.qcow2");
        s.AssertOracleSeesSameImage("a.qcow2");
    }

    [Fact]
    public void Bitmaps_left_in_use_by_a_crash_are_shown_and_refused_as_qemu_does()
    {
        using var s = new SideBySide();
        s.InBoth(d =>
        {
            string path = d.File("c.qcow2");
            QemuImg.Create("qcow2", path, "64M");
            QemuImg.Run("bitmap", "--add", path, "b0").EnsureSuccess("qemu-img bitmap");
            QemuImg.Run("bitmap", "--add", "--disable", path, "b1").EnsureSuccess("qemu-img bitmap");
            QemuIo.Run(path, "qcow2", "write 0 64k", "sigraise 9");
        });
        // The crash left the same bytes in both directories only if qemu-io wrote the same; start from one copy.
        File.Copy(s.Qemu("c.qcow2"), s.Blk("c.qcow2"), overwrite: true);
        string[][] steps =
        [
            ["info", "@c.qcow2"],
            ["info", "--output=json", "@c.qcow2"],
            ["check", "@c.qcow2"],
            ["bitmap", "--clear", "@c.qcow2", "b0"],
            ["bitmap", "--enable", "@c.qcow2", "b1"],
            ["bitmap", "--add", "--merge", "b0", "@c.qcow2", "b2"],
            ["resize", "@c.qcow2", "128M"],
            ["bitmap", "--remove", "@c.qcow2", "b0"],
            ["resize", "@c.qcow2", "128M"],
            ["bitmap", "--remove", "@c.qcow2", "b1"],
            ["info", "@c.qcow2"],
            ["check", "@c.qcow2"],
        ];
        foreach (var step in steps)
        {
            var (q, b) = s.Img(step);
            AssertSame((WithoutDiskSize(q), WithoutDiskSize(b)));
            s.AssertSameBytes("c.qcow2");
        }
    }

    public static TheoryData<string[], string> Conversions() => new()
    {
        { new[] { "convert", "--bitmaps", "-O", "qcow2", "@s.qcow2", "@o.qcow2" }, "o.qcow2" },
        { new[] { "convert", "--bitmaps", "-c", "-O", "qcow2", "@s.qcow2", "@o.qcow2" }, "o.qcow2" },
        { new[] { "convert", "--bitmaps", "-O", "raw", "@s.qcow2", "@o.raw" }, "o.raw" },
        { new[] { "convert", "--bitmaps", "-O", "qcow2", "-o", "compat=0.10", "@s.qcow2", "@o.qcow2" }, "o.qcow2" },
        { new[] { "convert", "--bitmaps", "-f", "raw", "-O", "qcow2", "@r.raw", "@o.qcow2" }, "o.qcow2" },
        { new[] { "convert", "--bitmaps", "-O", "qcow2", "@s.qcow2", "@a.qcow2", "@o.qcow2" }, "o.qcow2" },
        { new[] { "convert", "--bitmaps", "-n", "-O", "qcow2", "@s.qcow2", "@a.qcow2" }, "a.qcow2" },
        { new[] { "convert", "--bitmaps", "-n", "-O", "qcow2", "@a.qcow2", "@s.qcow2" }, "s.qcow2" },
        { new[] { "convert", "--bitmaps", "-O", "qcow2", "@crashed.qcow2", "@o.qcow2" }, "o.qcow2" },
        { new[] { "convert", "--bitmaps", "--skip-broken-bitmaps", "-O", "qcow2", "@crashed.qcow2", "@o.qcow2" }, "o.qcow2" },
        { new[] { "convert", "--skip-broken-bitmaps", "-O", "qcow2", "@s.qcow2", "@o.qcow2" }, "o.qcow2" },
    };

    /// <summary><c>convert --bitmaps</c> copies the persistent bitmaps (granularity, enabled state, bits) as qemu-img does.</summary>
    [Theory]
    [MemberData(nameof(Conversions))]
    public void Convert_copies_bitmaps_as_qemu_img_does(string[] args, string target)
    {
        using var s = Prepared();
        s.InBoth(d => QemuImg.Run("bitmap", "--add", "--disable", "-g", "1M", "--merge", "sb", d.File("s.qcow2"), "s2").EnsureSuccess("qemu-img bitmap"));
        string crashed = s.Qemu("crashed.qcow2");
        File.Copy(s.Qemu("s.qcow2"), crashed);
        QemuIo.Run(crashed, "qcow2", "write 0 64k", "sigraise 9");
        File.Copy(crashed, s.Blk("crashed.qcow2"));

        AssertSame(s.Img(args));
        s.AssertSameBytes(target);
        if (File.Exists(s.Qemu(target)) && target.EndsWith(".qcow2", StringComparison.Ordinal))
        {
            var (q, b) = s.Oracle("info", "@" + target);
            AssertSame((WithoutDiskSize(q), WithoutDiskSize(b)));
        }
    }

    /// <summary>Host disk usage depends on how the file system allocated (and on sparse copies): left out.</summary>
    private static ProcessResult WithoutDiskSize(ProcessResult r) => r with
    {
        Stdout = string.Join('\n', r.Stdout.Split('\n').Where(l =>
            !l.StartsWith("disk size:", StringComparison.Ordinal) && !l.Contains("\"actual-size\"", StringComparison.Ordinal))),
    };
}
