using System.Diagnostics;
using System.Runtime.InteropServices;
using Block.Cli.Common;

namespace Block.Cli.Serve;

/// <summary>
/// <c>--daemonize</c> (<c>blk serve</c>) and <c>--fork</c> (<c>blk nbd</c>): the parent starts the daemon as a detached
/// child and exits once the child reports that its startup succeeded (or with the child's exit code if it failed), as
/// qemu-storage-daemon and qemu-nbd do.
/// </summary>
/// <remarks>
/// .NET cannot <c>fork()</c> safely (other threads exist before <c>Main</c>), so the child is a new process running
/// the same command line without <c>--daemonize</c>. It learns it is the child from an environment variable, starts
/// a new session (<c>setsid</c>), and reports readiness by writing a line on its stdout, a pipe the parent reads;
/// then it points stdin, stdout and stderr at <c>/dev/null</c>. Startup errors reach the parent's stderr, which
/// relays the child's until then.
/// </remarks>
internal static partial class Daemon
{
    private const string ChildVariable = "BLK_SERVE_DAEMON_CHILD";
    private const string ReadyLine = "blk-serve-ready";

    /// <summary>True in the child of a <c>--daemonize</c>d start.</summary>
    public static bool IsChild => Environment.GetEnvironmentVariable(ChildVariable) == "1";

    /// <summary>Starts <c>blk COMMAND ARGS</c> as the child, without <paramref name="flag"/>, and waits for its startup.</summary>
    public static async Task<int> RunParentAsync(CliContext cli, string command, string[] args, string flag)
    {
        var start = new ProcessStartInfo
        {
            FileName = Environment.ProcessPath ?? throw new CliException("cannot find this program's path to daemonize"),
            RedirectStandardOutput = true,
            RedirectStandardInput = false,
            // The child's stderr comes through the parent until startup ends: the child's runtime keeps duplicates
            // of its standard descriptors, so a stderr inherited from the parent would stay open in the daemon and
            // whoever reads the parent's stderr would wait for its end as long as the daemon lives.
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        // Under `dotnet blk.dll` the process is the host; the child needs the assembly too.
        // (The runtime gives the assembly's path as the first command-line argument.)
        if (Path.GetFileNameWithoutExtension(start.FileName) == "dotnet")
            start.ArgumentList.Add(Environment.GetCommandLineArgs()[0]);
        start.ArgumentList.Add(command);
        foreach (string arg in args)
        {
            if (arg != flag)
                start.ArgumentList.Add(arg);
        }
        start.Environment[ChildVariable] = "1";
        using var child = new Process { StartInfo = start };
        child.ErrorDataReceived += (_, e) =>
        {
            if (e.Data != null)
                cli.Err.WriteLine(e.Data);
        };
        if (!child.Start())
            throw new CliException("could not start the daemon");
        child.BeginErrorReadLine();
        string? line = await child.StandardOutput.ReadLineAsync();
        if (line == ReadyLine)
        {
            child.CancelErrorRead();
            return 0;
        }
        await child.WaitForExitAsync();
        return child.ExitCode == 0 ? 1 : child.ExitCode;
    }

    /// <summary>In the child, after startup: detach from the terminal and tell the parent to exit.</summary>
    public static void SignalReady()
    {
        _ = SetSid();
        var stdout = Console.OpenStandardOutput();
        stdout.Write(System.Text.Encoding.ASCII.GetBytes(ReadyLine + "\n"));
        stdout.Flush();
        using var devNull = File.OpenHandle("/dev/null", FileMode.Open, FileAccess.ReadWrite);
        int fd = (int)devNull.DangerousGetHandle();
        for (int target = 0; target <= 2; target++)
            _ = Dup2(fd, target);
    }

    [LibraryImport("libc", EntryPoint = "setsid")]
    private static partial int SetSid();

    [LibraryImport("libc", EntryPoint = "dup2")]
    private static partial int Dup2(int oldFd, int newFd);
}
