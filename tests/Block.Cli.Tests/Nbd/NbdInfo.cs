using Block.TestSupport;

namespace Block.Cli.Tests.Nbd;

/// <summary>libnbd's <c>nbdinfo</c>, a client we did not write.</summary>
internal static class NbdInfo
{
    private static readonly Lazy<string> s_path = new(() => ProcessRunner.Which("nbdinfo")
        ?? throw new InvalidOperationException("nbdinfo is not installed: these tests need Debian's libnbd-bin (run ./test.sh, which installs it)"));

    /// <summary><c>nbdinfo ARGS</c>, its stdout with the socket path replaced by SOCKET (it fails the test on a non-zero exit).</summary>
    public static string Run(string socket, params string[] args)
    {
        var r = ProcessRunner.Run(s_path.Value, args, TimeSpan.FromSeconds(60));
        Assert.True(r.ExitCode == 0, $"nbdinfo {string.Join(' ', args)} failed: {r.Stderr}");
        return r.Stdout.Replace(socket, "SOCKET", StringComparison.Ordinal);
    }
}
