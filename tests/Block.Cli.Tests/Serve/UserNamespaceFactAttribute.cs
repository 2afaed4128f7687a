using Block.TestSupport;

namespace Block.Cli.Tests.Serve;

/// <summary>
/// A fact that needs an unprivileged user and mount namespace (<c>unshare -rm</c>) in which it can mount a tmpfs: the
/// one way to make a really full file system without root. Where the machine allows none, the test is reported as
/// skipped, with the reason, rather than passing without checking anything.
/// </summary>
public sealed class UserNamespaceFactAttribute : FactAttribute
{
    private static readonly Lazy<bool> s_available = new(CanMountTmpfs);

    public UserNamespaceFactAttribute()
    {
        if (!s_available.Value)
            Skip = "this machine lets no unprivileged user mount a tmpfs in a namespace of its own (unshare -rm)";
    }

    private static bool CanMountTmpfs()
    {
        using var dir = new TempDirectory();
        return ProcessRunner.Run("unshare", ["-rm", "sh", "-c", "mount -t tmpfs -o size=64k none \"$0\"", dir.Path], TimeSpan.FromSeconds(60)).ExitCode == 0;
    }
}
