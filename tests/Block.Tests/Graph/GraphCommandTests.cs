using Block.Drivers.File;
using Block.Drivers.Null;
using Block.Events;
using Block.Graph;
using Block.TestSupport;

namespace Block.Tests.Graph;

/// <summary>The graph commands over raw, file and null nodes: lookups, resize, threshold, bitmaps, deletion, child changes.</summary>
public sealed class GraphCommandTests
{
    private static async Task<(BlockGraph Graph, BlockNode File, BlockNode Raw)> RawGraphAsync(TempDirectory dir, bool readOnly = false)
    {
        string path = dir.File("a.raw");
        TestImages.CreateZeroFile(path, 1 << 20);
        var graph = new BlockGraph();
        var file = await graph.AddNodeAsync(new BlockdevOptionsFile { Filename = path, NodeName = "f", ReadOnly = readOnly });
        var raw = await graph.AddNodeAsync(graph.Parser.ParseJson($$"""{"driver": "raw", "node-name": "r", "file": "f", "read-only": {{(readOnly ? "true" : "false")}}}"""));
        return (graph, file, raw);
    }

    [Fact]
    public async Task Lookup_finds_a_device_root_before_a_node_and_names_both_arguments_when_it_fails()
    {
        using var dir = new TempDirectory();
        var (graph, _, raw) = await RawGraphAsync(dir);
        await using var _ = graph;
        graph.CreateBackend(raw, new BlockBackendOptions { Name = "drive0" });
        Assert.Same(raw, graph.LookupNode("drive0", null));
        Assert.Same(raw, graph.LookupNode("zz", "r"));
        Assert.Same(raw, graph.LookupNode(null, "r"));
        Assert.Equal("Cannot find device='r' nor node-name=''", Assert.Throws<BlockNotFoundException>(() => graph.LookupNode("r", null)).Message);
        Assert.Equal("Cannot find device='' nor node-name=''", Assert.Throws<BlockNotFoundException>(() => graph.LookupNode(null, null)).Message);
        Assert.Equal("Cannot find device='x' nor node-name='y'", Assert.Throws<BlockNotFoundException>(() => graph.LookupNode("x", "y")).Message);

        Assert.Same(raw, graph.LookupRootNode("drive0"));
        Assert.Equal("Need a root block node", Assert.Throws<BlockException>(() => graph.LookupRootNode("f")).Message);

        var e = Assert.Throws<BlockNotFoundException>(() => graph.LookupBackend("r"));
        Assert.Equal("Device 'r' not found", e.Message);
        Assert.Equal(QmpErrorClass.DeviceNotFound, e.ErrorClass);
        Assert.Equal("drive0", BlockGraph.DeviceOrNodeName(raw));
        Assert.Equal("f", BlockGraph.DeviceOrNodeName(graph.FindNode("f")!));
    }

    [Fact]
    public async Task Resize_grows_a_device_in_use_and_refuses_with_qemus_messages()
    {
        using var dir = new TempDirectory();
        var (graph, _, raw) = await RawGraphAsync(dir);
        await using var _ = graph;
        var device = graph.CreateBackend(raw, new BlockBackendOptions { Name = "drive0" });
        await graph.ResizeAsync("drive0", null, 2 << 20);
        Assert.Equal(2 << 20, device.Length);
        await device.WriteAsync((2 << 20) - 512, Patterns.Fill(512, 9));
        Assert.Equal(2 << 20, new FileInfo(dir.File("a.raw")).Length);
        Assert.Equal(Patterns.Fill(512, 9), File.ReadAllBytes(dir.File("a.raw"))[^512..]);

        Assert.Equal("Parameter 'size' expects a >0 size", (await Assert.ThrowsAsync<BlockOptionsException>(async () => await graph.ResizeAsync(null, "r", -1))).Message);
        Assert.Equal("Cannot find device='' nor node-name='zz'", (await Assert.ThrowsAsync<BlockNotFoundException>(async () => await graph.ResizeAsync(null, "zz", -1))).Message);
        // raw passes its users' permissions through to its file, so (as in QEMU) the file under it may be resized.
        await graph.ResizeAsync(null, "f", 1 << 20);
        Assert.Equal(1 << 20, device.Length);

        await graph.AddNodeAsync(new BlockdevOptionsNull { Driver = "null-co", NodeName = "n" });
        Assert.Equal("Image format driver does not support resize", (await Assert.ThrowsAsync<BlockException>(async () => await graph.ResizeAsync(null, "n", 4096))).Message);
    }

    [Fact]
    public async Task Resize_of_a_read_only_node_fails_with_qemus_message_and_changes_nothing()
    {
        using var dir = new TempDirectory();
        var (graph, _, _) = await RawGraphAsync(dir, readOnly: true);
        await using var _ = graph;
        var e = await Assert.ThrowsAsync<BlockException>(async () => await graph.ResizeAsync(null, "r", 4096));
        Assert.Equal("Image is read-only", e.Message);
        Assert.Equal(1 << 20, new FileInfo(dir.File("a.raw")).Length);
        Assert.Equal(BlockPermissions.None, graph.FindNode("r")!.Permissions);
    }

    [Fact]
    public async Task Write_threshold_is_unsigned_fires_once_and_names_a_missing_node_as_qemu_does()
    {
        using var dir = new TempDirectory();
        var (graph, _, raw) = await RawGraphAsync(dir);
        await using var _ = graph;
        var events = new List<BlockWriteThresholdEvent>();
        graph.EventRaised += e =>
        {
            if (e is BlockWriteThresholdEvent t)
                events.Add(t);
        };
        Assert.Equal("Device 'zz' not found", Assert.Throws<BlockNotFoundException>(() => graph.SetWriteThreshold("zz", 1)).Message);

        graph.SetWriteThreshold("r", ulong.MaxValue);
        Assert.Equal(-1, raw.GetDeviceInfo().WriteThreshold);
        await raw.WriteAsync((1 << 20) - 4096, new byte[4096]);
        Assert.Empty(events);

        graph.SetWriteThreshold("r", 65536);
        await raw.WriteAsync(65536 - 512, new byte[1024]);
        await raw.WriteAsync(65536, new byte[1024]);
        var fired = Assert.Single(events);
        Assert.Equal("r", fired.NodeName);
        Assert.Equal(512UL, fired.AmountExceeded);
        Assert.Equal(0, raw.WriteThreshold);
    }

    [Fact]
    public async Task Dirty_bitmap_commands_look_up_and_refuse_with_qemus_messages()
    {
        using var dir = new TempDirectory();
        var (graph, _, raw) = await RawGraphAsync(dir);
        await using var _ = graph;
        graph.CreateBackend(raw, new BlockBackendOptions { Name = "drive0" });

        Assert.Equal("Bitmap name cannot be empty", Assert.Throws<BlockException>(() => graph.AddDirtyBitmapAsync("zz", "")).Message);
        Assert.Equal("Cannot find device='zz' nor node-name='zz'", Assert.Throws<BlockNotFoundException>(() => graph.AddDirtyBitmapAsync("zz", "b")).Message);
        Assert.Equal("Granularity must be power of 2 and at least 512",
            (await Assert.ThrowsAsync<BlockException>(async () => await graph.AddDirtyBitmapAsync("drive0", "b", granularity: 1000))).Message);
        Assert.Equal("Can't store persistent bitmaps to drive0: Operation not supported",
            (await Assert.ThrowsAsync<BlockException>(async () => await graph.AddDirtyBitmapAsync("drive0", "b", persistent: true))).Message);

        var b = await graph.AddDirtyBitmapAsync("drive0", "b", granularity: 65536, disabled: true);
        Assert.Same(b, raw.FindDirtyBitmap("b"));
        Assert.False(b.Enabled);
        Assert.Equal(65536, b.Granularity);
        Assert.Equal("Bitmap already exists: b", (await Assert.ThrowsAsync<BlockException>(async () => await graph.AddDirtyBitmapAsync("r", "b"))).Message);
        var active = await graph.AddDirtyBitmapAsync("r", "a");
        Assert.Equal(65536, active.Granularity);
        await raw.WriteAsync(0, new byte[512]);
        Assert.Equal(65536, active.Count);
        graph.ClearDirtyBitmap("drive0", "a");
        Assert.Equal(0, active.Count);

        Assert.Equal("Node 'zz' not found", Assert.Throws<BlockNotFoundException>(() => graph.ClearDirtyBitmap("zz", "a")).Message);
        Assert.Equal("Node 'zz' not found", Assert.Throws<BlockNotFoundException>(() => graph.RemoveDirtyBitmapAsync("zz", "a")).Message);
        Assert.Equal("Dirty bitmap 'x' not found", Assert.Throws<BlockException>(() => graph.ClearDirtyBitmap("r", "x")).Message);
        await graph.RemoveDirtyBitmapAsync("r", "b");
        Assert.Null(raw.FindDirtyBitmap("b"));
    }

    [Fact]
    public async Task Delete_refuses_nodes_in_use_and_nodes_it_did_not_add_with_qemus_messages()
    {
        using var dir = new TempDirectory();
        var (graph, _, raw) = await RawGraphAsync(dir);
        await using var _ = graph;
        var device = graph.CreateBackend(raw, new BlockBackendOptions { Name = "drive0" });
        string other = dir.File("b.raw");
        TestImages.CreateZeroFile(other, 4096);
        var opened = await graph.OpenImageAsync(other, new ImageOpenOptions { Format = "raw" });
        string protocol = opened.Root!.PrimaryChild!.Node.NodeName;

        Assert.Equal("Failed to find node with node-name='zz'", (await Assert.ThrowsAsync<BlockNotFoundException>(async () => await graph.DeleteNodeAsync("zz"))).Message);
        Assert.Equal("Node r is in use", (await Assert.ThrowsAsync<BlockException>(async () => await graph.DeleteNodeAsync("r"))).Message);
        Assert.Equal("Block device f is in use", (await Assert.ThrowsAsync<BlockException>(async () => await graph.DeleteNodeAsync("f"))).Message);
        Assert.Equal($"Node {protocol} is not owned by the monitor", (await Assert.ThrowsAsync<BlockException>(async () => await graph.DeleteNodeAsync(protocol))).Message);

        await device.DisposeAsync();
        await graph.DeleteNodeAsync("r");
        await graph.DeleteNodeAsync("f");
        Assert.Null(graph.FindNode("f"));
    }

    [Fact]
    public async Task Child_changes_are_refused_with_qemus_messages_by_drivers_that_do_not_take_children()
    {
        using var dir = new TempDirectory();
        var (graph, _, _) = await RawGraphAsync(dir);
        await using var _ = graph;
        graph.CreateBackend(graph.FindNode("r")!, new BlockBackendOptions { Name = "drive0" });
        await graph.AddNodeAsync(new BlockdevOptionsNull { Driver = "null-co", NodeName = "n" });

        async Task<string> Fails(string parent, string? child, string? node) =>
            (await Assert.ThrowsAnyAsync<BlockException>(async () => await graph.ChangeChildAsync(parent, child, node))).Message;
        Assert.Equal("Cannot find device='zz' nor node-name='zz'", await Fails("zz", "a", "b"));
        Assert.Equal("Either child or node must be specified", await Fails("r", null, null));
        Assert.Equal("The parameters child and node are in conflict", await Fails("r", "file", "n"));
        Assert.Equal("Node 'r' does not have child 'x'", await Fails("r", "x", null));
        Assert.Equal("The node drive0 does not support removing a child", await Fails("r", "file", null));
        Assert.Equal("Node 'zz' not found", await Fails("r", null, "zz"));
        Assert.Equal("The node drive0 does not support adding a child", await Fails("drive0", null, "n"));
    }

    [Fact]
    public async Task A_drain_waits_for_every_backend_request_and_none_reaches_a_node_while_drained()
    {
        using var dir = new TempDirectory();
        var (graph, _, raw) = await RawGraphAsync(dir);
        await using var _ = graph;
        var device = graph.CreateBackend(raw);
        using var stop = new CancellationTokenSource();
        var writers = Enumerable.Range(0, 4).Select(w => Task.Run(async () =>
        {
            var data = Patterns.Fill(4096, (byte)w);
            while (!stop.IsCancellationRequested)
                await device.WriteAsync(w * 4096L, data);
        })).ToArray();
        for (int i = 0; i < 200; i++)
        {
            await using (await graph.BeginDrainAsync())
            {
                Assert.Equal(0, raw.InFlight);
                Assert.Equal(0, graph.FindNode("f")!.InFlight);
                await Task.Yield();
                Assert.Equal(0, raw.InFlight);
            }
        }
        stop.Cancel();
        await Task.WhenAll(writers);
    }
}
