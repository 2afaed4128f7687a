using System.Diagnostics;
using System.Net.Sockets;
using Block.TestSupport;

namespace Block.Cli.Tests.Nbd;

/// <summary>
/// A qemu-nbd or <c>blk nbd</c> process serving on a unix socket, started with exactly the arguments given (no
/// <c>--persistent</c> added), so tests can watch when it exits; killed when disposed if still running.
/// </summary>
internal sealed class NbdProcess : IDisposable
{
    private readonly Process _process;

    private NbdProcess(Process process, string socket)
    {
        _process = process;
        Socket = socket;
    }

    public string Socket { get; }

    public bool HasExited => _process.HasExited;

    /// <summary>The <c>nbd+unix</c> URI of export <paramref name="name"/>.</summary>
    public string Uri(string name = "") => $"nbd+unix:///{name}?socket={Socket}";

    /// <summary><c>qemu-nbd -k SOCKET ARGS</c>.</summary>
    public static NbdProcess Qemu(string socket, params string[] args) => Start(QemuNbd.Path, ["-k", socket, .. args], socket);

    /// <summary><c>blk nbd -k SOCKET ARGS</c>, the built assembly under dotnet.</summary>
    public static NbdProcess Blk(string socket, params string[] args) =>
        Start("dotnet", [typeof(Blk).Assembly.Location, "nbd", "-k", socket, .. args], socket);

    private static NbdProcess Start(string program, string[] args, string socket)
    {
        var process = ProcessRunner.Start(program, args);
        var clock = Stopwatch.StartNew();
        while (true)
        {
            if (process.HasExited)
                throw new InvalidOperationException($"{program} exited with {process.ExitCode}: {process.StandardError.ReadToEnd()}");
            if (File.Exists(socket))
            {
                try
                {
                    // A probe that connects and leaves without a handshake does not count as a client for qemu-nbd.
                    using var probe = new System.Net.Sockets.Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
                    probe.Connect(new UnixDomainSocketEndPoint(socket));
                    return new NbdProcess(process, socket);
                }
                catch (SocketException)
                {
                    // Bound, not yet listening.
                }
            }
            if (clock.Elapsed > TimeSpan.FromSeconds(60))
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException($"{program} did not listen within 60 s");
            }
            Thread.Sleep(20);
        }
    }

    /// <summary>Waits for the process to exit by itself and returns its exit code.</summary>
    public int WaitForExit()
    {
        if (!_process.WaitForExit(TimeSpan.FromSeconds(60)))
            throw new TimeoutException("the NBD server did not exit");
        return _process.ExitCode;
    }

    /// <summary>Stops the server as a user would (SIGTERM, so images close cleanly), killing it only if that fails.</summary>
    public void Dispose()
    {
        if (!_process.HasExited)
        {
            ProcessRunner.Run("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
            if (!_process.WaitForExit(TimeSpan.FromSeconds(30)))
                _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
        }
        _process.Dispose();
    }
}
