using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;

namespace Block.TestSupport;

/// <summary>
/// Debian's <c>qemu-system-x86_64</c> 7.2 run as an oracle for device-level behaviour: a q35 machine that never starts
/// (<c>-S -nodefaults -display none</c>) but has real device models (virtio-blk-pci, ide-cd, scsi-cd) attached to the
/// test's <c>-drive</c>/<c>-blockdev</c>/<c>-device</c> arguments, with a negotiated <see cref="QmpClient"/> on a
/// fresh unix socket.
/// </summary>
/// <remarks>
/// The emulator runs no guest code, so it costs about as much as qemu-storage-daemon to start. Its stderr is kept for
/// failure messages. <see cref="DisposeAsync"/> sends <c>quit</c> and kills the process if it does not exit.
/// </remarks>
public sealed class QemuSystem : IAsyncDisposable
{
    private static readonly Lazy<string> s_path = new(() => ProcessRunner.Which("qemu-system-x86_64")
        ?? throw new InvalidOperationException(
            "qemu-system-x86_64 is not installed: the device oracle tests need Debian's qemu-system-x86 7.2 (run ./test.sh, which installs it)"));

    private readonly Process _process;
    private readonly StringBuilder _stderr = new();
    private readonly string _directory;

    private QemuSystem(Process process, string directory)
    {
        _process = process;
        _directory = directory;
    }

    /// <summary>The negotiated QMP client.</summary>
    public QmpClient Qmp { get; private set; } = null!;

    /// <summary>What the emulator wrote on stderr so far.</summary>
    public string Stderr
    {
        get
        {
            lock (_stderr)
                return _stderr.ToString();
        }
    }

    /// <summary>Starts a stopped q35 machine with <paramref name="arguments"/> (<c>-drive</c>, <c>-device</c>…) and connects.</summary>
    /// <exception cref="InvalidOperationException">The emulator exited or never opened its socket; the message has its stderr.</exception>
    public static async Task<QemuSystem> StartAsync(params string[] arguments)
    {
        string directory = Path.Combine(Path.GetTempPath(), "qemu-sys-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(directory);
        string socket = Path.Combine(directory, "qmp.sock");
        var process = ProcessRunner.Start(s_path.Value,
            ["-M", "q35", "-S", "-nodefaults", "-display", "none", "-qmp", $"unix:{socket},server=on,wait=off", .. arguments]);
        var system = new QemuSystem(process, directory);
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data != null)
            {
                lock (system._stderr)
                    system._stderr.AppendLine(e.Data);
            }
        };
        process.OutputDataReceived += (_, _) => { };
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        process.StandardInput.Close();
        try
        {
            var deadline = Stopwatch.StartNew();
            while (!File.Exists(socket))
            {
                if (process.HasExited)
                    throw new InvalidOperationException($"qemu-system-x86_64 exited with code {process.ExitCode}");
                if (deadline.Elapsed > TimeSpan.FromSeconds(30))
                    throw new TimeoutException($"no monitor socket {socket} in 30 s");
                await Task.Delay(10).ConfigureAwait(false);
            }
            // The socket file exists from bind(); connections are refused until listen(), which a loaded machine can
            // put well after it: refused connects are tried again until the same deadline.
            while (true)
            {
                try
                {
                    system.Qmp = await QmpClient.ConnectUnixAsync(socket).ConfigureAwait(false);
                    break;
                }
                catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionRefused && !process.HasExited
                                                && deadline.Elapsed < TimeSpan.FromSeconds(30))
                {
                    await Task.Delay(10).ConfigureAwait(false);
                }
            }
            await system.Qmp.NegotiateAsync().ConfigureAwait(false);
            return system;
        }
        catch (Exception e) when (e is InvalidOperationException or TimeoutException or SocketException or IOException)
        {
            await system.DisposeAsync().ConfigureAwait(false);
            throw new InvalidOperationException($"qemu-system-x86_64 did not start a QMP monitor: {e.Message}\nstderr:\n{system.Stderr}", e);
        }
    }

    /// <summary>Runs a command and returns the whole reply.</summary>
    public Task<JsonObject> ExecuteAsync(string command, JsonObject? arguments = null) => Qmp.ExecuteAsync(command, arguments);

    /// <summary>Sends <c>quit</c>, waits for the exit (killing the emulator after 10 s) and removes the socket directory.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited && Qmp is { IsClosed: false })
            {
                try
                {
                    await Qmp.ExecuteAsync("quit", timeout: TimeSpan.FromSeconds(10)).ConfigureAwait(false);
                }
                catch (Exception e) when (e is InvalidOperationException or TimeoutException or IOException or SocketException)
                {
                    // The emulator may close the connection before its reply reaches us.
                }
            }
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            try
            {
                await _process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync().ConfigureAwait(false);
            }
        }
        finally
        {
            if (Qmp != null)
                await Qmp.DisposeAsync().ConfigureAwait(false);
            _process.Dispose();
            try
            {
                Directory.Delete(_directory, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
