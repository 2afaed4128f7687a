using Block.Drivers;
using Block.Graph;
using Block.Nbd.Server;
using Block.Qcow2;

namespace Block.Nbd.Tests;

/// <summary>Our NBD server exporting one image on a unix socket in a test directory.</summary>
internal sealed class NbdTestServer : IAsyncDisposable
{
    private NbdTestServer(BlockGraph graph, BlockBackend backend, NbdServer server, string socket)
    {
        Graph = graph;
        Backend = backend;
        Server = server;
        Socket = socket;
    }

    public BlockGraph Graph { get; }

    public BlockBackend Backend { get; }

    public NbdServer Server { get; }

    public string Socket { get; }

    public static async Task<NbdTestServer> StartAsync(string socket, string image, string format, string name, bool writable = true,
        NbdServerOptions? options = null, string? description = null)
    {
        var graph = new BlockGraph(new BlockGraphOptions { Drivers = DriverRegistry.CreateDefault().AddQcow2() });
        var backend = await graph.OpenImageAsync(image, new ImageOpenOptions { Format = format, ReadOnly = !writable });
        var server = new NbdServer(options);
        server.AddExport(new NbdExport(name, backend, writable, description));
        server.Listen(NbdServer.BindUnix(socket), socket);
        return new NbdTestServer(graph, backend, server, socket);
    }

    public async ValueTask DisposeAsync()
    {
        await Server.DisposeAsync();
        await Backend.DisposeAsync();
        await Graph.DisposeAsync();
    }
}
