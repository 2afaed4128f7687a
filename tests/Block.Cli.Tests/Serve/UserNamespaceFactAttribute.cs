using Block.TestSupport;

namespace Block.Cli.Tests.Serve;

/// <summary>
/// A fact that needs an unprivileged user and mount namespace (<c>unshare -rm</c>) in which it can mount a tmpfs: the
/// one way to make a really full file system without root. Where the machine allows none, the test is reported as
/// skipped, with the reason, rather than passing without checking anything.
/// </summary>
public sealed class UserNamespaceFactAttribute : FactAttribute
{
    public UserNamespaceFactAttribute()
    {
        if (!UserNamespaceTmpfs.Available)
            Skip = UserNamespaceTmpfs.Unavailable;
    }
}

/// <summary>The theory form of <see cref="UserNamespaceFactAttribute"/>.</summary>
public sealed class UserNamespaceTheoryAttribute : TheoryAttribute
{
    public UserNamespaceTheoryAttribute()
    {
        if (!UserNamespaceTmpfs.Available)
            Skip = UserNamespaceTmpfs.Unavailable;
    }
}

/// <summary>Whether this machine lets an unprivileged user mount a tmpfs in a namespace of its own (asked once).</summary>
internal static class UserNamespaceTmpfs
{
    private static readonly Lazy<bool> s_available = new(CanMountTmpfs);

    public const string Unavailable = "this machine lets no unprivileged user mount a tmpfs in a namespace of its own (unshare -rm)";

    public static bool Available => s_available.Value;

    private static bool CanMountTmpfs()
    {
        using var dir = new TempDirectory();
        return ProcessRunner.Run("unshare", ["-rm", "sh", "-c", "mount -t tmpfs -o size=64k none \"$0\"", dir.Path], TimeSpan.FromSeconds(60)).ExitCode == 0;
    }
}
