using Block.TestSupport;

namespace Block.Formats.Tests.Dmg;

/// <summary>
/// qemu-img and qemu-io on dmg images compared with blk. Debian's QEMU is built without its dmg bzip2 and lzfse
/// modules and says so on stderr each time it loads the dmg driver ("module block-block-dmg-bz2 not found"): those
/// lines are dropped before comparing.
/// </summary>
internal static class DmgOracle
{
    /// <summary>QEMU's stderr without its notes about missing dmg modules.</summary>
    public static string WithoutModuleNotes(string stderr) =>
        string.Concat(stderr.Split('\n').Where(l => !l.Contains("module block-block-dmg-", StringComparison.Ordinal)).Select(l => l + "\n"))[..^1];

    /// <summary>Runs the same qemu-img command with qemu-img and blk: same stdout, stderr (module notes aside) and exit code.</summary>
    public static void AssertSameOutput(params string[] args)
    {
        var q = QemuImg.Run(args);
        var b = BlkRunner.Run(args);
        Assert.Equal(q.Stdout, b.Stdout);
        Assert.Equal(BlkRunner.AsBlk(WithoutModuleNotes(q.Stderr)), b.Stderr);
        Assert.Equal(q.ExitCode, b.ExitCode);
    }

    /// <summary>The image's content as qemu-img sees it.</summary>
    public static byte[] QemuRaw(TempDirectory dir, string image) => Images.QemuRaw(dir, image, "dmg");

    /// <summary>The same qemu-io commands on a read-only image with qemu-io and blk; returns qemu-io's output.</summary>
    public static string AssertSameIo(string image, params string[] commands)
    {
        var args = new List<string> { "-r", "-f", "dmg" };
        foreach (var c in commands)
            args.AddRange(["-c", c]);
        args.Add(image);
        var q = ProcessRunner.Run(QemuIo.Path, args);
        var b = BlkRunner.Run(["io", .. args]);
        Assert.Equal(BlkRunner.Normalize(q.Stdout), BlkRunner.Normalize(b.Stdout));
        Assert.Equal(BlkRunner.AsBlk(WithoutModuleNotes(q.Stderr)), b.Stderr);
        Assert.Equal(q.ExitCode, b.ExitCode);
        return q.Stdout + q.Stderr;
    }
}
