using System.Diagnostics;
using Block.Gluster.Driver;
using Block.Gluster.Options;
using Block.Graph;
using Block.Options;
using Block.TestSupport;

namespace Block.Gluster.Tests;

/// <summary>
/// How a node reaches and leaves its volume: fail-over across the <c>server</c> list, and a close that does not wait
/// for libgfapi 10.3's 10 s <c>glfs_fini</c>.
/// </summary>
[Collection(GlusterServerCollection.Name)]
public sealed class GlusterConnectionTests(GlusterServer server)
{
    [Fact]
    public async Task Closing_a_node_returns_at_once_and_finalises_gfapi_in_the_background()
    {
        string name = GlusterServer.NewName("raw");
        TestSupport.QemuImg.Create("raw", server.File(name), "1M");
        await using var graph = server.NewGraph();
        var backend = await graph.OpenImageAsync(GlusterServer.Url(name), new ImageOpenOptions { Format = "raw" });
        await backend.WriteAsync(0, Patterns.Random(4096, 3));
        var clock = Stopwatch.StartNew();
        await backend.DisposeAsync();
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(3), $"the close took {clock.Elapsed}");
        Assert.True(GlusterConnection.FinalisingCount > 0, "glfs_fini is not running in the background");
        // The close sent what gfapi's write-behind held: the brick has the bytes.
        Assert.Equal(Patterns.Random(4096, 3), System.IO.File.ReadAllBytes(server.File(name)).AsSpan(0, 4096).ToArray());
    }

    [Fact]
    public async Task A_server_list_fails_over_to_the_next_volfile_server()
    {
        string name = GlusterServer.NewName("raw");
        TestSupport.QemuImg.Create("raw", server.File(name), "1M");
        TestSupport.QemuIo.RunChecked(server.File(name), "raw", "write -P 0x6b 0 64k");
        await using var graph = server.NewGraph();
        // The first server has nothing listening; gfapi moves on to the second.
        string options = $$$"""{"driver":"raw","file":{"driver":"gluster","volume":"{{{GlusterServer.Volume}}}","path":"{{{name}}}","server":[{"type":"tcp","host":"127.0.0.9","port":"24007"},{"type":"tcp","host":"127.0.0.2"}]}}""";
        var backend = await graph.OpenImageAsync(System.Text.Json.Nodes.JsonNode.Parse(options)!.AsObject());
        var buffer = new byte[65536];
        await backend.ReadAsync(0, buffer);
        Assert.All(buffer, b => Assert.Equal(0x6b, b));
        await backend.DisposeAsync();
    }

    [Fact]
    public void Blockdev_options_read_the_schemas_members()
    {
        var options = (BlockdevOptionsGluster)new GlusterDriver().ParseOptions(
            new OptionsReader(System.Text.Json.Nodes.JsonNode.Parse("""{"volume":"v","path":"/a.raw","server":[{"type":"unix","path":"/s"},{"type":"tcp","host":"h","port":"24008"}],"debug":9,"logfile":"/tmp/g.log"}""")!.AsObject(), keyval: false),
            new BlockdevOptionsParser(Drivers.DriverRegistry.CreateDefault().AddGluster()));
        Assert.Equal("v", options.Volume);
        Assert.Equal("/a.raw", options.Path);
        Assert.Equal([GlusterServer0(), Tcp()], options.Server);
        Assert.Equal(9, options.Debug);
        Assert.Equal("/tmp/g.log", options.Logfile);

        static Options.GlusterServer GlusterServer0() => Options.GlusterServer.ForUnix("/s");
        static Options.GlusterServer Tcp() => Options.GlusterServer.ForTcp("h", "24008");
    }
}
