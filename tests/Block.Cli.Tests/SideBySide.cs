using Block.TestSupport;

namespace Block.Cli.Tests;

/// <summary>
/// Twin directories, one for QEMU's tools and one for <c>blk</c>, holding the same file names: a command runs in both
/// with <c>@name</c> arguments naming a file of its own directory, and the outputs are compared with the directories
/// cut out of them (so <c>Formatting '@x.qcow2'</c> reads <c>Formatting 'x.qcow2'</c> on both sides).
/// </summary>
internal sealed class SideBySide : IDisposable
{
    private readonly TempDirectory _qemu = new();
    private readonly TempDirectory _blk = new();

    /// <summary>A file of QEMU's directory.</summary>
    public string Qemu(string name) => _qemu.File(name);

    /// <summary>A file of blk's directory.</summary>
    public string Blk(string name) => _blk.File(name);

    /// <summary>Runs <paramref name="prepare"/> once per directory (with the directory), for the same starting point.</summary>
    public void InBoth(Action<TempDirectory> prepare)
    {
        prepare(_qemu);
        prepare(_blk);
    }

    /// <summary>Runs <c>qemu-img ARGS</c> and <c>blk ARGS</c>.</summary>
    public (ProcessResult Qemu, ProcessResult Blk) Img(params string[] args) =>
        (Normalize(QemuImg.Run(Expand(args, _qemu), _qemu.Path), _qemu),
         Normalize(BlkRunner.Run(Expand(args, _blk)), _blk));

    /// <summary>Runs <c>qemu-io ARGS</c> and <c>blk io ARGS</c>.</summary>
    public (ProcessResult Qemu, ProcessResult Blk) Io(params string[] args) =>
        (Normalize(ProcessRunner.Run(QemuIo.Path, Expand(args, _qemu), workingDirectory: _qemu.Path), _qemu),
         Normalize(BlkRunner.Run(["io", .. Expand(args, _blk)]), _blk));

    /// <summary>Runs <c>qemu-img ARGS</c> on each side's files (the oracle looking at both results).</summary>
    public (ProcessResult Qemu, ProcessResult Blk) Oracle(params string[] args) =>
        (Normalize(QemuImg.Run(Expand(args, _qemu), _qemu.Path), _qemu),
         Normalize(QemuImg.Run(Expand(args, _blk), _blk.Path), _blk));

    /// <summary>Asserts that both sides printed the same and exited the same.</summary>
    public static void AssertSame((ProcessResult Qemu, ProcessResult Blk) r)
    {
        // One comparison of everything, so a failure shows blk's error message beside the stdout that differs.
        string qemu = Describe(r.Qemu), blk = Describe(r.Blk);
        if (qemu != blk)
            Assert.Fail($"blk's run differs from QEMU's.\n=== QEMU\n{qemu}=== blk\n{blk}");

        static string Describe(ProcessResult p) => $"exit {p.ExitCode}\n--- stdout\n{p.Stdout}--- stderr\n{p.Stderr}";
    }

    /// <summary>Runs a command on both sides and asserts the same output; returns the exit code.</summary>
    public int AssertSameImg(params string[] args)
    {
        var r = Img(args);
        AssertSame(r);
        return r.Qemu.ExitCode;
    }

    /// <summary>
    /// Asserts that the two files named <paramref name="name"/> have the same bytes, where a file name recorded inside
    /// (a data file's) may differ by its directory only.
    /// </summary>
    public void AssertSameBytes(string name)
    {
        Assert.Equal(File.Exists(Qemu(name)), File.Exists(Blk(name)));
        if (!File.Exists(Qemu(name)))
            return;
        var q = File.ReadAllBytes(Qemu(name));
        var b = File.ReadAllBytes(Blk(name));
        ReplaceAll(b, System.Text.Encoding.UTF8.GetBytes(_blk.Path), System.Text.Encoding.UTF8.GetBytes(_qemu.Path));
        Assert.Equal(q.Length, b.Length);
        int first = q.AsSpan().CommonPrefixLength(b);
        Assert.True(first == q.Length, $"{name} differs first at byte {first}");
    }

    /// <summary>
    /// Asserts that QEMU sees the two images alike: <c>qemu-img check</c> (clean on both) and <c>info --output=json</c>
    /// with the disk usage left out (it depends on how the host file system allocated).
    /// </summary>
    public void AssertOracleSeesSameImage(string name, string format = "qcow2")
    {
        var check = Oracle("check", "-f", format, "@" + name);
        AssertSame(check);
        Assert.Equal(0, check.Qemu.ExitCode);
        var info = Oracle("info", "--output=json", "-f", format, "@" + name);
        AssertSame(info with { Qemu = WithoutActualSize(info.Qemu), Blk = WithoutActualSize(info.Blk) });
    }

    /// <summary>Replaces <paramref name="from"/> by <paramref name="to"/> (of the same length) in place.</summary>
    private static void ReplaceAll(byte[] data, byte[] from, byte[] to)
    {
        Assert.Equal(from.Length, to.Length);
        for (int i = data.AsSpan().IndexOf(from); i >= 0;)
        {
            to.CopyTo(data, i);
            int next = data.AsSpan(i + 1).IndexOf(from);
            i = next < 0 ? -1 : i + 1 + next;
        }
    }

    private static ProcessResult WithoutActualSize(ProcessResult r) =>
        r with { Stdout = string.Join('\n', r.Stdout.Split('\n').Where(l => !l.Contains("\"actual-size\"", StringComparison.Ordinal))) };

    private static string[] Expand(string[] args, TempDirectory dir) =>
        [.. args.Select(a => a.Replace("@", dir.Path + "/", StringComparison.Ordinal))];

    private static ProcessResult Normalize(ProcessResult r, TempDirectory dir) => r with
    {
        Stdout = BlkRunner.Normalize(r.Stdout.Replace(dir.Path + "/", string.Empty, StringComparison.Ordinal)),
        Stderr = BlkRunner.Normalize(r.Stderr.Replace(dir.Path + "/", string.Empty, StringComparison.Ordinal)),
    };

    public void Dispose()
    {
        _qemu.Dispose();
        _blk.Dispose();
    }
}
