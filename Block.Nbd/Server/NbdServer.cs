using Block.Io;
using System.Net;
using System.Net.Sockets;

namespace Block.Nbd.Server;

/// <summary>
/// An NBD server (QEMU's <c>nbd-server-start</c>): listens on one unix or TCP socket, speaks the fixed newstyle
/// handshake and serves the exports added to it, each through its own <see cref="Graph.BlockBackend"/>.
/// </summary>
/// <remarks>
/// Any number of clients are served at once, each with up to <see cref="NbdServerOptions.MaxRequestsInFlight"/>
/// requests in flight. A client that misbehaves (bad magic, truncated or oversized messages, a handshake that does
/// not finish within <see cref="NbdServerOptions.HandshakeTimeout"/>) loses its own connection and nothing else.
/// </remarks>
public sealed class NbdServer : IAsyncDisposable
{
    private readonly Dictionary<string, NbdExport> _exports = new(StringComparer.Ordinal);
    private readonly List<NbdConnection> _connections = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim? _connectionSlots;
    private Socket? _listener;
    private string? _unixPath;
    private Task _acceptLoop = Task.CompletedTask;
    private bool _disposed;
    private long _peakBytesInFlight;

    /// <summary>Creates a server with no exports and no listening socket.</summary>
    public NbdServer(NbdServerOptions? options = null)
    {
        Options = options ?? new NbdServerOptions();
        if (Options.MaxConnections > 0)
            _connectionSlots = new SemaphoreSlim(Options.MaxConnections);
    }

    /// <summary>The server's settings.</summary>
    public NbdServerOptions Options { get; }

    /// <summary>The address the server listens on (the port chosen when port 0 was asked for), once it listens.</summary>
    public EndPoint? LocalEndPoint => _listener?.LocalEndPoint;

    /// <summary>The exports, in no particular order.</summary>
    public IReadOnlyList<NbdExport> Exports
    {
        get
        {
            lock (_exports)
                return [.. _exports.Values];
        }
    }

    /// <summary>How many clients are connected now, in the handshake or in transmission.</summary>
    public int ConnectionCount
    {
        get
        {
            lock (_connections)
                return _connections.Count;
        }
    }

    /// <summary>
    /// Raised after a client's connection closed, with whether it had finished the handshake; qemu-nbd without
    /// <c>--persistent</c> exits when the last client that did goes away.
    /// </summary>
    public event Action<bool>? ConnectionClosed;

    /// <summary>Raised when serving a client failed for a reason other than the client's own behaviour (a bug).</summary>
    public event Action<Exception>? ConnectionFailed;

    /// <summary>The export named <paramref name="name"/>, or null.</summary>
    public NbdExport? FindExport(string name)
    {
        lock (_exports)
            return _exports.GetValueOrDefault(name);
    }

    /// <summary>Adds <paramref name="export"/>; clients can ask for it from now on.</summary>
    /// <exception cref="BlockException">An export of that name already exists.</exception>
    public void AddExport(NbdExport export)
    {
        ArgumentNullException.ThrowIfNull(export);
        lock (_exports)
        {
            if (!_exports.TryAdd(export.Name, export))
                throw new BlockException(Errno.EEXIST, $"NBD server already has export named '{export.Name}'");
        }
    }

    /// <summary>
    /// Removes the export named <paramref name="name"/>. With <paramref name="hard"/> its clients are disconnected;
    /// without, the removal fails while clients are connected (QEMU's <c>mode=safe</c>).
    /// </summary>
    /// <exception cref="BlockException">No such export, or it is still in use and <paramref name="hard"/> is false.</exception>
    public async ValueTask RemoveExportAsync(string name, bool hard)
    {
        NbdExport? export;
        if (!hard)
        {
            lock (_exports)
                export = _exports.GetValueOrDefault(name);
            if (export != null)
                await export.SettleHungUpConnectionsAsync().ConfigureAwait(false);
        }
        lock (_exports)
        {
            if (!_exports.TryGetValue(name, out export))
                throw new BlockException(Errno.ENOENT, $"Export '{name}' is not found");
            if (!hard && export.ConnectionCount > 0)
                throw new BlockException(Errno.EBUSY, $"export '{name}' still in use");
            _exports.Remove(name);
        }
        await export.CloseAsync().ConfigureAwait(false);
    }

    /// <summary>A unix socket bound at <paramref name="path"/> and listening; a stale socket file there is replaced.</summary>
    /// <exception cref="BlockException">The socket could not be bound.</exception>
    public static Socket BindUnix(string path) => ListeningSocket.BindUnix(path, backlog: 64);

    /// <summary>A TCP socket bound at <paramref name="host"/>:<paramref name="port"/> and listening.</summary>
    /// <exception cref="BlockException">The address did not resolve or could not be bound.</exception>
    public static Socket BindTcp(string host, int port) => ListeningSocket.BindTcp(host, port, backlog: 64);

    /// <summary>
    /// Starts accepting clients on <paramref name="listening"/> (see <see cref="BindUnix"/> and <see cref="BindTcp"/>),
    /// which the server owns from now on; <paramref name="unixPath"/> is removed when the server stops.
    /// </summary>
    /// <exception cref="BlockException">The server already listens.</exception>
    public void Listen(Socket listening, string? unixPath = null)
    {
        ArgumentNullException.ThrowIfNull(listening);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_listener != null)
            throw new BlockException(Errno.EBUSY, "NBD server already running");
        _listener = listening;
        _unixPath = unixPath;
        _acceptLoop = Task.Run(AcceptLoopAsync);
    }

    /// <summary>
    /// Serves one client over <paramref name="stream"/> (a socket, a pipe, an in-memory duplex stream) until it
    /// disconnects or the server stops; the stream is disposed at the end.
    /// </summary>
    public Task ServeAsync(Stream stream)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var connection = new NbdConnection(this, stream);
        lock (_connections)
        {
            if (_disposed)
            {
                stream.Dispose();
                return Task.CompletedTask;
            }
            _connections.Add(connection);
        }
        return RunConnectionAsync(connection);
    }

    private async Task RunConnectionAsync(NbdConnection connection)
    {
        try
        {
            await connection.RunAsync(_stop.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            ConnectionFailed?.Invoke(e);
        }
        finally
        {
            lock (_connections)
                _connections.Remove(connection);
            ConnectionClosed?.Invoke(connection.Negotiated);
        }
    }

    internal void ReportFailure(Exception e) => ConnectionFailed?.Invoke(e);

    /// <summary>The most READ/WRITE payload bytes one client has held at once (tests check the bound with it).</summary>
    internal long PeakBytesInFlight => Volatile.Read(ref _peakBytesInFlight);

    internal void NotePeakBytesInFlight(long bytes)
    {
        long peak;
        while (bytes > (peak = Volatile.Read(ref _peakBytesInFlight)) && Interlocked.CompareExchange(ref _peakBytesInFlight, bytes, peak) != peak)
        {
        }
    }

    private async Task AcceptLoopAsync()
    {
        var token = _stop.Token;
        while (!token.IsCancellationRequested)
        {
            try
            {
                // At max-connections the server stops accepting, as QEMU does: new clients wait in the backlog.
                if (_connectionSlots != null)
                    await _connectionSlots.WaitAsync(token).ConfigureAwait(false);
                Socket client;
                try
                {
                    client = await _listener!.AcceptAsync(token).ConfigureAwait(false);
                }
                catch
                {
                    _connectionSlots?.Release();
                    throw;
                }
                if (client.AddressFamily != AddressFamily.Unix)
                    client.NoDelay = true;
                var served = ServeAsync(new NetworkStream(client, ownsSocket: true));
                if (_connectionSlots != null)
                    _ = served.ContinueWith(static (_, s) => ((SemaphoreSlim)s!).Release(), _connectionSlots, TaskScheduler.Default);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                if (token.IsCancellationRequested)
                    return;
            }
        }
    }

    /// <summary>Stops listening, disconnects every client and closes every export (QEMU's <c>nbd-server-stop</c>).</summary>
    public async ValueTask DisposeAsync()
    {
        NbdConnection[] connections;
        lock (_connections)
        {
            if (_disposed)
                return;
            _disposed = true;
            connections = [.. _connections];
        }
        _stop.Cancel();
        _listener?.Dispose();
        await _acceptLoop.ConfigureAwait(false);
        foreach (var c in connections)
            c.Abort();
        foreach (var c in connections)
            await c.Completion.ConfigureAwait(false);
        NbdExport[] exports;
        lock (_exports)
        {
            exports = [.. _exports.Values];
            _exports.Clear();
        }
        foreach (var export in exports)
            await export.CloseAsync().ConfigureAwait(false);
        if (_unixPath != null)
        {
            try
            {
                File.Delete(_unixPath);
            }
            catch (IOException)
            {
                // Someone else's file by now, or already gone: nothing of ours to clean.
            }
        }
        _stop.Dispose();
    }
}
