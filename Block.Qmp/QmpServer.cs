using System.Reflection;
using System.Text.Json.Nodes;
using Block.Events;
using Block.Graph;
using Block.Qmp.Commands;
using Block.Qmp.Schema;
using Block.Qmp.Wire;

namespace Block.Qmp;

/// <summary>
/// The QMP adapter over a <see cref="BlockGraph"/>: a command table, any number of sessions, and the graph's events
/// delivered to every session with a timestamp.
/// </summary>
/// <remarks>
/// <para>
/// Commands run one at a time across all sessions, as QEMU runs them under its big lock: a graph change is never
/// interleaved with another client's, so a command that deletes a node cannot race one that uses it. Guest I/O is not
/// under this lock; it goes through the graph's own request path.
/// </para>
/// <para>
/// Hosting is the caller's: <see cref="RunSessionAsync(Stream, CancellationToken)"/> serves one stream (a VMM's own socket or pipe), and
/// <see cref="QmpListener"/> accepts clients on a unix or TCP socket, one at a time per listener as QEMU's
/// socket chardevs do.
/// </para>
/// </remarks>
public sealed class QmpServer : IAsyncDisposable
{
    private readonly SemaphoreSlim _commandLock = new(1, 1);
    private readonly List<QmpSession> _sessions = [];
    private readonly TaskCompletionSource _quit = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly CancellationTokenSource _stopping = new();
    private readonly QmpEventThrottle _throttle;

    /// <summary>Creates a server over <paramref name="graph"/> with the block commands registered.</summary>
    public QmpServer(BlockGraph graph, QmpServerOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(graph);
        Graph = graph;
        Options = options ?? new QmpServerOptions();
        Commands = new QmpCommandTable { ArgumentChecker = CheckArguments };
        CoreCommands.Register(Commands);
        BlockCommands.Register(Commands);
        DeviceCommands.Register(Commands);
        JobCommands.Register(Commands);
        BackupCommands.Register(Commands);
        MirrorCommands.Register(Commands);
        ReplicationCommands.Register(Commands);
        _throttle = new QmpEventThrottle(Options.TimeProvider, Deliver);
        graph.EventRaised += OnBlockEvent;
    }

    /// <summary>The graph commands act on.</summary>
    public BlockGraph Graph { get; }

    /// <summary>The server's settings.</summary>
    public QmpServerOptions Options { get; }

    /// <summary>The command table; other packages add their commands here.</summary>
    public QmpCommandTable Commands { get; }

    /// <summary>Completes when a client sends <c>quit</c>.</summary>
    public Task QuitRequested => _quit.Task;

    /// <summary>Raised when a handler fails with an exception that is not a <see cref="BlockException"/> (a bug).</summary>
    public event Action<Exception>? HandlerFailed;

    /// <summary>Serves one client over <paramref name="stream"/> until the stream ends or the server stops.</summary>
    public Task RunSessionAsync(Stream stream, CancellationToken cancellationToken = default) =>
        RunSessionAsync(stream, pretty: false, cancellationToken);

    /// <summary>
    /// Serves one client over <paramref name="stream"/> until the stream ends or the server stops, pretty-printing
    /// what it sends when <paramref name="pretty"/> (QEMU's <c>--monitor …,pretty=on</c>).
    /// </summary>
    public async Task RunSessionAsync(Stream stream, bool pretty, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(stream);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopping.Token);
        var session = new QmpSession(this, stream, pretty);
        await session.RunAsync(linked.Token).ConfigureAwait(false);
    }

    /// <summary>
    /// Runs a command as a client would, without a session (arguments are checked as for a client). In-process
    /// callers get the same behaviour and errors as QMP clients.
    /// </summary>
    /// <param name="name">The command's name or alias.</param>
    /// <param name="arguments">Its arguments, or null for none.</param>
    /// <param name="cancellationToken">Cancels waiting for the command lock and the command itself.</param>
    /// <returns>The value of the reply's <c>return</c> member.</returns>
    /// <exception cref="BlockException">The error a client would get, with its class.</exception>
    public ValueTask<JsonNode?> ExecuteAsync(string name, JsonObject? arguments = null, CancellationToken cancellationToken = default) =>
        ExecuteAsync(name, arguments ?? [], session: null, cancellationToken);

    internal async ValueTask<JsonNode?> ExecuteAsync(string name, JsonObject arguments, QmpSession? session, CancellationToken cancellationToken)
    {
        var command = Commands.Find(name)
            ?? throw new QmpException(QmpErrorClass.CommandNotFound, $"The command {name} has not been found");
        if (command.CheckArguments)
            Commands.ArgumentChecker?.Invoke(command.Name, arguments);
        await _commandLock.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return await command.Handler(new QmpCommandContext(this, session), arguments, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _commandLock.Release();
        }
    }

    /// <summary>Sends an event to every session in command mode.</summary>
    /// <param name="name">The event's name (<c>DEVICE_TRAY_MOVED</c>…).</param>
    /// <param name="data">Its <c>data</c> member, or null for none.</param>
    /// <param name="timestamp">When it happened.</param>
    /// <remarks>Events a guest can trigger at will (quorum's) are rate-limited as QEMU's monitor limits them: see <see cref="QmpServerOptions.TimeProvider"/>.</remarks>
    public void Emit(string name, JsonObject? data, DateTimeOffset timestamp)
    {
        var message = new JsonObject { ["event"] = name };
        if (data != null)
            message["data"] = data;
        long micros = timestamp.ToUnixTimeMilliseconds() * 1000 + (timestamp.Ticks % TimeSpan.TicksPerMillisecond / 10);
        message["timestamp"] = new JsonObject
        {
            ["seconds"] = micros / 1_000_000,
            ["microseconds"] = micros % 1_000_000,
        };
        if (QmpEventThrottle.IsLimited(name, data, out string? key))
            _throttle.Offer(name, key, message);
        else
            Deliver(message);
    }

    private void Deliver(JsonObject message)
    {
        QmpSession[] sessions;
        lock (_sessions)
            sessions = [.. _sessions];
        foreach (var s in sessions)
            s.PostEvent(message);
    }

    /// <summary>Asks the server to stop: <see cref="QuitRequested"/> completes (QMP <c>quit</c>).</summary>
    public void RequestQuit() => _quit.TrySetResult();

    /// <summary>Stops every session; the graph is the caller's to close.</summary>
    public ValueTask DisposeAsync()
    {
        Graph.EventRaised -= OnBlockEvent;
        _throttle.Dispose();
        _stopping.Cancel();
        QmpSession[] sessions;
        lock (_sessions)
            sessions = [.. _sessions];
        foreach (var s in sessions)
            s.Close();
        return ValueTask.CompletedTask;
    }

    /// <summary>The greeting every session starts with.</summary>
    internal JsonObject Greeting() => new()
    {
        ["QMP"] = new JsonObject
        {
            ["version"] = VersionInfo(),
            ["capabilities"] = new JsonArray(),
        },
    };

    /// <summary>The schema's <c>VersionInfo</c>: the schema version implemented and this package's version.</summary>
    internal JsonObject VersionInfo() => new()
    {
        ["qemu"] = new JsonObject
        {
            ["major"] = Options.SchemaVersion.Major,
            ["minor"] = Options.SchemaVersion.Minor,
            ["micro"] = Math.Max(0, Options.SchemaVersion.Build),
        },
        ["package"] = Options.Package,
    };

    internal void AddSession(QmpSession session)
    {
        lock (_sessions)
            _sessions.Add(session);
    }

    internal void RemoveSession(QmpSession session)
    {
        lock (_sessions)
            _sessions.Remove(session);
    }

    internal void ReportHandlerFailure(Exception e) => HandlerFailed?.Invoke(e);

    private void OnBlockEvent(BlockEvent e) => Emit(e.Name, e.ToData(), e.Timestamp);

    /// <summary>Checks arguments against the schema, except where the handler's own parser does (blockdev-add).</summary>
    private static void CheckArguments(string command, JsonObject arguments)
    {
        if (QapiSchema.Instance.FindCommand(command) is { ArgumentsCheckedByHandler: false } schema)
            schema.ValidateArguments(arguments);
    }
}

/// <summary>Settings of a <see cref="QmpServer"/>.</summary>
public sealed record QmpServerOptions
{
    /// <summary>The schema version the greeting and <c>query-version</c> report: 2.9.0, the seed's.</summary>
    public Version SchemaVersion { get; init; } = new(2, 9, 0);

    /// <summary>The <c>package</c> string of the version (this library's name and version by default).</summary>
    public string Package { get; init; } = DefaultPackage();

    /// <summary>The bounds of one incoming JSON text.</summary>
    public QmpReaderLimits ReaderLimits { get; init; } = QmpReaderLimits.Default;

    /// <summary>
    /// The clock of the event rate limit (one <c>QUORUM_REPORT_BAD</c> per child and one <c>QUORUM_FAILURE</c> per
    /// second, the last one of a second delivered late), as in QEMU's monitor.
    /// </summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>How many replies and events may wait for a slow client before it is disconnected.</summary>
    /// <remarks>4096 messages of a few hundred bytes: about a megabyte per client at worst.</remarks>
    public int MaxQueuedMessages { get; init; } = 4096;

    private static string DefaultPackage()
    {
        var assembly = typeof(QmpServer).Assembly;
        string version = assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
            ?? assembly.GetName().Version?.ToString() ?? "0";
        int plus = version.IndexOf('+');
        return "Block " + (plus >= 0 ? version[..plus] : version);
    }
}
