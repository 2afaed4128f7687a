using Block.Drivers;
using Block.Drivers.Null;
using Block.Drivers.Raw;
using Block.Graph;
using Block.Nbd.Server;
using Block.Qmp;

namespace Block.Fuzz.Targets;

/// <summary>
/// A whole NBD client session against our server: the input is what the client sends (handshake options, then
/// request headers and write payloads), served from a writable 64 MiB <c>null-co</c> export with one dirty bitmap,
/// so the option parser, the request parser and every command run. A failure the server reports as its own
/// (<see cref="NbdServer.ConnectionFailed"/>) is a finding, as is a session that does not end with its input.
/// </summary>
public sealed class NbdServerTarget : IFuzzTarget
{
    /// <inheritdoc />
    public string Name => "nbd-server";

    /// <inheritdoc />
    public void Run(ReadOnlySpan<byte> input) => RunAsync(input.ToArray()).GetAwaiter().GetResult();

    private static async Task RunAsync(byte[] input)
    {
        var drivers = new DriverRegistry().Add(new NullDriver("null-co")).Add(new RawDriver());
        await using var graph = new BlockGraph(new BlockGraphOptions { Drivers = drivers });
        var node = await graph.AddNodeAsync(graph.Parser.ParseJson("""{"driver": "null-co", "node-name": "n", "size": 67108864}"""));
        await node.AddDirtyBitmapAsync("b0");
        node.GetDirtyBitmap("b0").SetDirty(1 << 20, 1 << 20);
        await using var server = new NbdServer();
        server.AddExport(NbdExport.Create(graph, "n", "disk", writable: true, bitmaps: ["b0"]));
        Exception? failure = null;
        server.ConnectionFailed += e => failure ??= e;
        using var output = new MemoryStream();
        using var stream = new DuplexStream(new MemoryStream(input, writable: false), output);
        await server.ServeAsync(stream).WaitAsync(TimeSpan.FromSeconds(30));
        if (failure != null)
            throw new InvalidOperationException("the NBD server failed serving a client", failure);
    }
}
