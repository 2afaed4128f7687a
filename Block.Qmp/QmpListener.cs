using Block.Io;
using System.Net;
using System.Net.Sockets;

namespace Block.Qmp;

/// <summary>
/// Accepts QMP clients on a unix or TCP socket and serves them one at a time, as a QEMU monitor on a socket chardev
/// (<c>server=on,wait=off</c>) does: a second client waits in the listen backlog until the first disconnects.
/// </summary>
/// <remarks>Several monitors serve several clients at once; every one of them sees every event.</remarks>
public sealed class QmpListener : IAsyncDisposable
{
    private readonly QmpServer _server;
    private readonly Socket _socket;
    private readonly string? _unixPath;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private readonly bool _pretty;
    private readonly TaskCompletionSource _firstClient = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private QmpListener(QmpServer server, Socket socket, string? unixPath, bool pretty)
    {
        _server = server;
        _socket = socket;
        _unixPath = unixPath;
        _pretty = pretty;
        _loop = Task.Run(AcceptLoopAsync);
    }

    /// <summary>The address the listener is bound to (the port chosen when port 0 was asked for).</summary>
    public EndPoint LocalEndPoint => _socket.LocalEndPoint!;

    /// <summary>Completes when the first client has connected (QEMU's <c>wait=on</c> waits for it at startup).</summary>
    public Task FirstClient => _firstClient.Task;

    /// <summary>Listens on a unix socket at <paramref name="path"/>, replacing a stale socket file there.</summary>
    public static QmpListener ListenUnix(QmpServer server, string path) => Start(server, BindUnix(path), path);

    /// <summary>Listens on TCP <paramref name="host"/>:<paramref name="port"/> (port 0 picks a free one).</summary>
    public static QmpListener ListenTcp(QmpServer server, string host, int port) => Start(server, BindTcp(host, port), null);

    /// <summary>
    /// Serves QMP on <paramref name="socket"/>, already bound and listening (see <see cref="BindUnix"/> and
    /// <see cref="BindTcp"/>): a daemon binds its sockets while it reads its command line and starts serving later.
    /// </summary>
    /// <param name="server">The server whose commands clients run.</param>
    /// <param name="socket">The listening socket; the listener owns it from now on.</param>
    /// <param name="unixPath">The socket file to remove at the end, for a unix socket.</param>
    /// <param name="pretty">Pretty-print replies and events (QEMU's <c>--monitor …,pretty=on</c>).</param>
    public static QmpListener Start(QmpServer server, Socket socket, string? unixPath, bool pretty = false)
    {
        ArgumentNullException.ThrowIfNull(server);
        ArgumentNullException.ThrowIfNull(socket);
        return new QmpListener(server, socket, unixPath, pretty);
    }

    /// <summary>A unix socket bound at <paramref name="path"/> and listening; a stale socket file there is replaced.</summary>
    /// <exception cref="BlockException">The socket could not be bound.</exception>
    public static Socket BindUnix(string path) => ListeningSocket.BindUnix(path, backlog: 16);

    /// <summary>A TCP socket bound at <paramref name="host"/>:<paramref name="port"/> and listening.</summary>
    /// <exception cref="BlockException">The address did not resolve or could not be bound.</exception>
    public static Socket BindTcp(string host, int port) => ListeningSocket.BindTcp(host, port, backlog: 16);

    private async Task AcceptLoopAsync()
    {
        var token = _stop.Token;
        while (!token.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _socket.AcceptAsync(token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                if (token.IsCancellationRequested)
                    return;
                continue;
            }
            _firstClient.TrySetResult();
            await using var stream = new NetworkStream(client, ownsSocket: true);
            try
            {
                await _server.RunSessionAsync(stream, _pretty, token).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException or OperationCanceledException)
            {
                // One client's broken connection is not the listener's end.
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                // Nor is a bug in serving it: report it and serve the next client.
                _server.ReportHandlerFailure(e);
            }
        }
    }

    /// <summary>Stops accepting, ends the current session and removes the unix socket file.</summary>
    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _socket.Dispose();
        try
        {
            await _loop.ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        if (_unixPath != null)
        {
            try
            {
                File.Delete(_unixPath);
            }
            catch (IOException)
            {
            }
        }
        _stop.Dispose();
    }
}
