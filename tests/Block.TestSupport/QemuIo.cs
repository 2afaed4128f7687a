namespace Block.TestSupport;

/// <summary>The oracle's qemu-io 7.2: runs commands against an image.</summary>
public static class QemuIo
{
    private static readonly Lazy<string> s_path = new(() => ProcessRunner.Which("qemu-io")
        ?? throw new InvalidOperationException("qemu-io is not installed: the oracle tests need Debian's qemu-utils (run ./test.sh, which installs it)"));

    /// <summary>Path of the qemu-io binary.</summary>
    public static string Path => s_path.Value;

    /// <summary>Runs each command with <c>-c</c> against <paramref name="image"/> of <paramref name="format"/>.</summary>
    public static ProcessResult Run(string image, string format, params string[] commands)
    {
        var args = new List<string> { "-f", format };
        foreach (var c in commands)
        {
            args.Add("-c");
            args.Add(c);
        }
        args.Add(image);
        return ProcessRunner.Run(Path, args);
    }

    /// <summary>Runs the commands and throws if qemu-io reports a failure (it exits 0 even then, so stdout is checked).</summary>
    public static string RunChecked(string image, string format, params string[] commands)
    {
        var r = Run(image, format, commands).EnsureSuccess("qemu-io");
        if (r.Stdout.Contains("failed", StringComparison.Ordinal) || r.Stderr.Length > 0)
            throw new InvalidOperationException($"qemu-io reported a failure:\n{r.Stdout}\n{r.Stderr}");
        return r.Stdout;
    }
}
