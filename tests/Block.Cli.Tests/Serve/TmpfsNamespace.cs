using Block.TestSupport;

namespace Block.Cli.Tests.Serve;

/// <summary>
/// A daemon (qemu-storage-daemon or <c>blk serve</c>) started in an unprivileged user and mount namespace of its own
/// (<c>unshare -rm</c>) with a small tmpfs mounted over a directory: the one way to give it a really full file system
/// without root. Tests using it are <see cref="UserNamespaceFactAttribute"/>s.
/// </summary>
/// <remarks>The tmpfs lives as long as the daemon: files on it are reached from outside through the daemon's own
/// root (<see cref="Inside"/>), and gone once it exits, so a test copies out what it compares before it quits.</remarks>
internal static class TmpfsNamespace
{
    /// <summary>
    /// Mounts a tmpfs of <paramref name="size"/> over <paramref name="directory"/> (which must exist), runs
    /// <paramref name="setup"/> (a shell command list, the directory as <c>$0</c>) there, then execs
    /// <paramref name="program"/> <paramref name="leadingArguments"/> <paramref name="arguments"/> with its monitor.
    /// </summary>
    public static Task<QemuStorageDaemon> StartAsync(string directory, string size, string setup, string program,
        IEnumerable<string> leadingArguments, IEnumerable<string> arguments)
    {
        string script = $"mount -t tmpfs -o size={size} none \"$0\" && {setup} && exec \"$@\"";
        return QemuStorageDaemon.StartAsync("unshare", ["-rm", "sh", "-c", script, directory, program, .. leadingArguments], arguments);
    }

    /// <summary>Starts <c>blk serve</c> this way.</summary>
    public static Task<QemuStorageDaemon> StartBlkServeAsync(string directory, string size, string setup, IEnumerable<string> arguments) =>
        StartAsync(directory, size, setup, "dotnet", [BlkServe.Assembly, "serve"], arguments);

    /// <summary>Starts qemu-storage-daemon 7.2 this way.</summary>
    public static Task<QemuStorageDaemon> StartQsdAsync(string directory, string size, string setup, IEnumerable<string> arguments) =>
        StartAsync(directory, size, setup, QemuStorageDaemon.Path, [], arguments);

    /// <summary><paramref name="path"/> (as the daemon sees it) seen from outside its mount namespace.</summary>
    public static string Inside(QemuStorageDaemon daemon, string path) => $"/proc/{daemon.ProcessId}/root{path}";
}
