using System.Diagnostics;
using System.Net.Sockets;

namespace Block.TestSupport;

/// <summary>The oracle's qemu-nbd 7.2 serving one image on a unix socket, stopped when disposed.</summary>
public sealed class QemuNbd : IDisposable
{
    private static readonly Lazy<string> s_path = new(() => ProcessRunner.Which("qemu-nbd")
        ?? throw new InvalidOperationException("qemu-nbd is not installed: the NBD oracle tests need Debian's qemu-utils (run ./test.sh, which installs it)"));

    private readonly Process _process;

    private QemuNbd(Process process, string socket)
    {
        _process = process;
        Socket = socket;
    }

    /// <summary>Path of the qemu-nbd binary.</summary>
    public static string Path => s_path.Value;

    /// <summary>The unix socket it listens on.</summary>
    public string Socket { get; }

    /// <summary>
    /// Starts <c>qemu-nbd -k SOCKET [extra…] IMAGE</c> (add <c>-x NAME</c>, <c>-f FMT</c>, <c>-r</c>… in
    /// <paramref name="arguments"/>) and returns once the socket accepts connections.
    /// </summary>
    public static QemuNbd Start(string socket, string image, params string[] arguments)
    {
        var process = ProcessRunner.Start(Path, ["-k", socket, "--persistent", .. arguments, image]);
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            if (process.HasExited)
                throw new InvalidOperationException($"qemu-nbd exited with {process.ExitCode}: {process.StandardError.ReadToEnd()}");
            if (File.Exists(socket))
            {
                try
                {
                    using var probe = new System.Net.Sockets.Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                    probe.Connect(new UnixDomainSocketEndPoint(socket));
                    return new QemuNbd(process, socket);
                }
                catch (SocketException)
                {
                    // Bound but not yet listening.
                }
            }
            if (deadline.Elapsed > TimeSpan.FromSeconds(60))
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException("qemu-nbd did not start listening within 60 s");
            }
            Thread.Sleep(20);
        }
    }

    /// <summary>The <c>nbd+unix</c> URI of export <paramref name="name"/> on <paramref name="socket"/>.</summary>
    public static string Uri(string socket, string name) => $"nbd+unix:///{name}?socket={socket}";

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
