using System.Diagnostics;
using System.Net.Sockets;

namespace Block.TestSupport;

/// <summary>nbdkit (a server we did not write) serving one plugin on a unix socket, stopped when disposed.</summary>
public sealed class NbdKit : IDisposable
{
    private static readonly Lazy<string> s_path = new(() => ProcessRunner.Which("nbdkit")
        ?? throw new InvalidOperationException("nbdkit is not installed: the NBD client oracle tests need Debian's nbdkit (run ./test.sh, which installs it)"));

    private readonly Process _process;

    private NbdKit(Process process, string socket)
    {
        _process = process;
        Socket = socket;
    }

    /// <summary>The unix socket it listens on.</summary>
    public string Socket { get; }

    /// <summary>The <c>nbd+unix</c> URI of its (default) export.</summary>
    public string Uri => $"nbd+unix:///?socket={Socket}";

    /// <summary>
    /// Starts <c>nbdkit --foreground -U SOCKET [arguments…]</c> (filters, the plugin and its parameters, e.g.
    /// <c>--filter=error memory 64M error-pread=EIO error-pread-rate=100%</c>) and returns once it accepts connections.
    /// </summary>
    public static NbdKit Start(string socket, params string[] arguments)
    {
        // A socket file left by an earlier server (killed, so it could not remove it) would make nbdkit refuse to bind.
        if (File.Exists(socket))
            File.Delete(socket);
        var process = ProcessRunner.Start(s_path.Value, ["--foreground", "--log=null", "-U", socket, .. arguments]);
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            if (process.HasExited)
                throw new InvalidOperationException($"nbdkit exited with {process.ExitCode}: {process.StandardError.ReadToEnd()}");
            if (File.Exists(socket))
            {
                try
                {
                    using var probe = new System.Net.Sockets.Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                    probe.Connect(new UnixDomainSocketEndPoint(socket));
                    return new NbdKit(process, socket);
                }
                catch (SocketException)
                {
                    // Bound but not yet listening.
                }
            }
            if (deadline.Elapsed > TimeSpan.FromSeconds(60))
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException("nbdkit did not start listening within 60 s");
            }
            Thread.Sleep(20);
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
        }
        _process.Dispose();
    }
}
