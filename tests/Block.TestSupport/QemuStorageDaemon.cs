using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;

namespace Block.TestSupport;

/// <summary>
/// A storage daemon run for one test: Debian's qemu-storage-daemon 7.2 (the oracle), or any program that takes its
/// command line (<c>blk serve</c>), started with the test's arguments plus its own <c>--chardev</c>/<c>--monitor</c>
/// pair on a fresh unix socket, with a negotiated <see cref="QmpClient"/> on that socket.
/// </summary>
/// <remarks>
/// The daemon's stderr is captured and included in every failure message, because that is where QEMU says why an
/// option was refused. <see cref="DisposeAsync"/> sends <c>quit</c> and waits, so images are closed cleanly (dirty
/// flags cleared, persistent bitmaps stored) before a test inspects them; a daemon that does not exit is killed.
/// </remarks>
public sealed class QemuStorageDaemon : IAsyncDisposable
{
    private static readonly Lazy<string> s_path = new(() => ProcessRunner.Which("qemu-storage-daemon")
        ?? throw new InvalidOperationException(
            "qemu-storage-daemon is not installed: the oracle tests need Debian's qemu-system-common 7.2 (run ./test.sh, which installs it)"));

    private readonly Process _process;
    private readonly StringBuilder _stderr = new();
    private readonly StringBuilder _stdout = new();
    private readonly List<QmpClient> _extraClients = [];
    private readonly string _socketDirectory;

    private readonly string _readyPath;

    private QemuStorageDaemon(Process process, string socketPath, string directory, string readyPath)
    {
        _process = process;
        SocketPath = socketPath;
        _socketDirectory = directory;
        _readyPath = readyPath;
    }

    /// <summary>Path of the qemu-storage-daemon binary.</summary>
    public static string Path => s_path.Value;

    /// <summary>The monitor socket.</summary>
    public string SocketPath { get; }

    /// <summary>The negotiated client on <see cref="SocketPath"/>.</summary>
    public QmpClient Qmp { get; private set; } = null!;

    /// <summary>The daemon's process id.</summary>
    public int ProcessId => _process.Id;

    /// <summary>True once the daemon has exited.</summary>
    public bool HasExited => _process.HasExited;

    /// <summary>The daemon's exit code (after it exited).</summary>
    public int ExitCode => _process.ExitCode;

    /// <summary>What the daemon wrote on stderr so far.</summary>
    public string Stderr
    {
        get
        {
            lock (_stderr)
                return _stderr.ToString();
        }
    }

    /// <summary>What the daemon wrote on stdout so far.</summary>
    public string Stdout
    {
        get
        {
            lock (_stdout)
                return _stdout.ToString();
        }
    }

    /// <summary>Starts qemu-storage-daemon with <paramref name="arguments"/> and connects.</summary>
    public static Task<QemuStorageDaemon> StartAsync(params string[] arguments) => StartAsync(Path, [], arguments);

    /// <summary>
    /// Starts <paramref name="program"/> <paramref name="leadingArguments"/> <paramref name="arguments"/> followed by
    /// <c>--chardev socket,id=…,path=…,server=on,wait=off --monitor chardev=…</c>, waits for the socket, connects and
    /// negotiates. Use it for any daemon that takes QSD's command line (<c>blk serve</c>: program <c>blk</c>, leading
    /// arguments <c>serve</c>).
    /// </summary>
    /// <exception cref="InvalidOperationException">The daemon exited or never opened its socket; the message has its stderr.</exception>
    public static async Task<QemuStorageDaemon> StartAsync(string program, IEnumerable<string> leadingArguments, IEnumerable<string> arguments,
        TimeSpan? timeout = null)
    {
        string directory = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "qsd-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(directory);
        string socket = System.IO.Path.Combine(directory, "qmp.sock");
        // QSD writes its pid file after making its chardevs, monitors and exports and before it accepts a connection
        // (documented, qemu-storage-daemon(1)); connecting only then avoids a monitor still being set up, which once
        // left qmp_capabilities unanswered for a minute and once repeated the greeting. A caller's own --pidfile
        // leaves the socket itself as the sign of readiness.
        var args = arguments.ToList();
        string readyPath = socket;
        if (!args.Contains("--pidfile"))
        {
            readyPath = System.IO.Path.Combine(directory, "daemon.pid");
            args.AddRange(["--pidfile", readyPath]);
        }
        var process = ProcessRunner.Start(program, leadingArguments.Concat(args)
            .Concat(["--chardev", $"socket,id=testmon,path={socket},server=on,wait=off", "--monitor", "chardev=testmon"]));
        var daemon = new QemuStorageDaemon(process, socket, directory, readyPath);
        process.ErrorDataReceived += (_, e) =>
        {
            if (e.Data != null)
            {
                lock (daemon._stderr)
                    daemon._stderr.AppendLine(e.Data);
            }
        };
        process.OutputDataReceived += (_, e) =>
        {
            if (e.Data != null)
            {
                lock (daemon._stdout)
                    daemon._stdout.AppendLine(e.Data);
            }
        };
        process.BeginErrorReadLine();
        process.BeginOutputReadLine();
        process.StandardInput.Close();
        try
        {
            daemon.Qmp = await daemon.ConnectAsync(timeout ?? TimeSpan.FromSeconds(30)).ConfigureAwait(false);
            await daemon.Qmp.NegotiateAsync(allowRepeatedGreeting: program == Path).ConfigureAwait(false);
            return daemon;
        }
        catch (Exception e)
        {
            await daemon.DisposeAsync().ConfigureAwait(false);
            throw new InvalidOperationException($"{program} did not start a QMP monitor: {e.Message}\nstderr:\n{daemon.Stderr}", e);
        }
    }

    /// <summary>Opens another, negotiated client on the monitor socket (one client at a time per socket, as in QEMU).</summary>
    public async Task<QmpClient> ConnectAnotherAsync()
    {
        var client = await QmpClient.ConnectUnixAsync(SocketPath).ConfigureAwait(false);
        await client.NegotiateAsync().ConfigureAwait(false);
        lock (_extraClients)
            _extraClients.Add(client);
        return client;
    }

    /// <summary>Runs a command on <see cref="Qmp"/> and returns the whole reply.</summary>
    public Task<JsonObject> ExecuteAsync(string command, JsonObject? arguments = null) => Qmp.ExecuteAsync(command, arguments);

    /// <summary>Runs a command on <see cref="Qmp"/> and returns its <c>return</c> value; throws on an error reply.</summary>
    public Task<JsonNode?> ExecuteOkAsync(string command, JsonObject? arguments = null) => Qmp.ExecuteOkAsync(command, arguments);

    /// <summary>
    /// Sends <c>quit</c> and waits for the daemon to exit (it closes its images first); kills it if it does not exit
    /// in 10 seconds. Returns true if it exited by itself.
    /// </summary>
    public async Task<bool> QuitAsync()
    {
        if (_process.HasExited)
        {
            // Also waits for the captured stderr and stdout to reach their end: HasExited can be true before the
            // last lines were read, and a failure message needs them (seen on a loaded machine).
            await _process.WaitForExitAsync().ConfigureAwait(false);
            return true;
        }
        if (Qmp is { IsClosed: false })
        {
            try
            {
                await Qmp.ExecuteAsync("quit", timeout: TimeSpan.FromSeconds(10)).ConfigureAwait(false);
            }
            catch (Exception e) when (e is InvalidOperationException or TimeoutException or IOException or SocketException)
            {
                // The daemon may close the connection before its reply reaches us.
            }
        }
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            await _process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
            return true;
        }
        catch (OperationCanceledException)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync().ConfigureAwait(false);
            return false;
        }
    }

    /// <summary>Quits the daemon (see <see cref="QuitAsync"/>) and removes its socket directory.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            await QuitAsync().ConfigureAwait(false);
        }
        finally
        {
            List<QmpClient> extra;
            lock (_extraClients)
                extra = [.. _extraClients];
            foreach (var c in extra)
                await c.DisposeAsync().ConfigureAwait(false);
            if (Qmp != null)
                await Qmp.DisposeAsync().ConfigureAwait(false);
            _process.Dispose();
            try
            {
                Directory.Delete(_socketDirectory, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }

    private async Task<QmpClient> ConnectAsync(TimeSpan timeout)
    {
        var deadline = Stopwatch.StartNew();
        Exception? last = null;
        while (deadline.Elapsed < timeout)
        {
            if (_process.HasExited)
                throw new InvalidOperationException($"the daemon exited with code {_process.ExitCode}");
            if (File.Exists(_readyPath) && File.Exists(SocketPath))
            {
                try
                {
                    return await QmpClient.ConnectUnixAsync(SocketPath, timeout).ConfigureAwait(false);
                }
                catch (SocketException e)
                {
                    last = e;
                }
            }
            await Task.Delay(10).ConfigureAwait(false);
        }
        throw new TimeoutException($"the monitor socket {SocketPath} did not accept a connection in {timeout}", last);
    }
}
