using Block.Drivers;
using Block.Graph;
using Block.Qcow2;
using Block.TestSupport;

namespace Block.Qmp.Tests;

/// <summary>A graph and a QMP server over it, listening on a unix socket in a temporary directory.</summary>
public sealed class QmpServerFixture : IAsyncDisposable
{
    private readonly QmpListener _listener;

    private QmpServerFixture(TempDirectory dir, BlockGraph graph, QmpServer server, QmpListener listener, string socketPath)
    {
        Directory = dir;
        Graph = graph;
        Server = server;
        _listener = listener;
        SocketPath = socketPath;
    }

    public TempDirectory Directory { get; }

    public BlockGraph Graph { get; }

    public QmpServer Server { get; }

    public string SocketPath { get; }

    public static QmpServerFixture Start(QmpServerOptions? options = null)
    {
        var dir = new TempDirectory();
        var graph = new BlockGraph(new BlockGraphOptions { Drivers = DriverRegistry.CreateDefault().AddQcow2() });
        var server = new QmpServer(graph, options);
        string socketPath = dir.File("qmp.sock");
        var listener = QmpListener.ListenUnix(server, socketPath);
        return new QmpServerFixture(dir, graph, server, listener, socketPath);
    }

    /// <summary>A client connected and, unless told otherwise, past capabilities negotiation.</summary>
    public async Task<QmpClient> ConnectAsync(bool negotiate = true)
    {
        var client = await QmpClient.ConnectUnixAsync(SocketPath, TimeSpan.FromSeconds(20));
        if (negotiate)
            await client.NegotiateAsync();
        return client;
    }

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        await _listener.DisposeAsync();
        await Graph.DisposeAsync();
        Directory.Dispose();
    }
}
