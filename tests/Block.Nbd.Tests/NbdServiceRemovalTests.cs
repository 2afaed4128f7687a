using System.Text.Json.Nodes;
using Block.Drivers;
using Block.Graph;
using Block.Nbd.Protocol;
using Block.Nbd.Server;
using Block.Options;
using Block.TestSupport;

namespace Block.Nbd.Tests;

/// <summary>
/// <c>nbd-server-remove</c>'s path (<see cref="NbdService"/>, the QMP one) after a client hung up: QEMU's event loop
/// has seen the hang-up by its next command, so a safe removal then succeeds. It was a flake of NbdExportTests in a
/// clean-clone run under load: the service counted connections without settling the hung-up ones first (only
/// <see cref="NbdServer.RemoveExportAsync"/> did).
/// </summary>
public sealed class NbdServiceRemovalTests
{
    private static async Task<(TempDirectory Dir, BlockGraph Graph, NbdService Service, string Socket)> StartAsync()
    {
        var dir = new TempDirectory();
        string image = dir.File("disk.raw");
        File.WriteAllBytes(image, new byte[1 << 20]);
        var graph = new BlockGraph(new BlockGraphOptions { Drivers = DriverRegistry.CreateDefault() });
        await graph.AddNodeAsync(graph.Parser.ParseJson(new JsonObject
        {
            ["driver"] = "raw", ["node-name"] = "disk0", ["file"] = new JsonObject { ["driver"] = "file", ["filename"] = image },
        }.ToJsonString()));
        var service = new NbdService(graph);
        string socket = dir.File("s.sock");
        service.Start(new OptionsReader(new JsonObject { ["addr"] = new JsonObject { ["type"] = "unix", ["data"] = new JsonObject { ["path"] = socket } } }, keyval: false));
        service.AddExport(new OptionsReader(new JsonObject { ["device"] = "disk0", ["name"] = "disk" }, keyval: false));
        return (dir, graph, service, socket);
    }

    [Fact]
    public async Task A_safe_removal_right_after_a_client_sent_its_disconnect_and_hung_up_succeeds()
    {
        // Each round gives the moment (the server thread not yet done with the client) another chance.
        for (int round = 0; round < 20; round++)
        {
            var (dir, graph, service, socket) = await StartAsync();
            using (dir)
            await using (graph)
            await using (service)
            {
                using (var client = RawNbdClient.Connect(socket))
                {
                    client.Negotiate("disk");
                    client.SendRequest(NbdProtocol.CmdDisc, 1, 0, 0);
                }
                var removed = await service.RemoveExportAsync("disk", hard: false);
                await removed.WaitAsync(TimeSpan.FromSeconds(60));
                Assert.Empty(service.QueryExports());
            }
        }
    }

    [Fact]
    public async Task A_safe_removal_still_fails_while_a_client_is_connected()
    {
        var (dir, graph, service, socket) = await StartAsync();
        using (dir)
        await using (graph)
        await using (service)
        {
            using var client = RawNbdClient.Connect(socket);
            client.Negotiate("disk");
            var e = await Assert.ThrowsAsync<BlockException>(async () => await service.RemoveExportAsync("disk", hard: false));
            Assert.Equal("export 'disk' still in use", e.Message);
        }
    }
}
