using Block.Graph;
using Block.TestSupport;

namespace Block.Qcow2.Tests.Graph;

/// <summary>External snapshots, resizes and bitmaps on a live graph: guest I/O goes on, and the images are what QEMU reads.</summary>
public sealed class ExternalSnapshotTests
{
    private const int MiB = 1 << 20;

    private static async Task<BlockNode> AddTopAsync(BlockGraph graph, TempDirectory dir, string name = "top.qcow2", string size = "16M")
    {
        QemuImg.Create("qcow2", dir.File(name), size);
        await graph.AddNodeAsync(graph.Parser.ParseJson($$"""{"driver": "file", "node-name": "f0", "filename": "{{dir.File(name)}}"}"""));
        return await graph.AddNodeAsync(graph.Parser.ParseJson("""{"driver": "qcow2", "node-name": "q0", "file": "f0"}"""));
    }

    [Fact]
    public async Task Guest_writes_through_a_device_go_to_the_overlay_after_a_snapshot_and_the_old_image_keeps_the_point_in_time()
    {
        using var dir = new TempDirectory();
        await using (var graph = Qcow2Images.NewGraph())
        {
            var q0 = await AddTopAsync(graph, dir);
            var device = graph.CreateBackend(q0, new BlockBackendOptions { Name = "drive0" });
            await device.WriteAsync(0, Patterns.Fill(MiB, 0xaa));
            await device.WriteAsync(4 * MiB, Patterns.Fill(64 * 1024, 0xab));

            var overlay = await graph.SnapshotSyncAsync("drive0", null, dir.File("s1.qcow2"));
            Assert.Same(overlay, device.Root);
            Assert.Same(q0, overlay.Backing!.Node);
            Assert.True(q0.ReadOnly);
            Assert.True(overlay.HasGeneratedName);
            Assert.False(overlay.IsMonitorOwned);

            await device.WriteAsync(512 * 1024, Patterns.Fill(MiB, 0xbb));
            var all = await Qcow2Images.ReadAllAsync(device);
            Assert.Equal(Patterns.Fill(512 * 1024, 0xaa), all[..(512 * 1024)]);
            Assert.Equal(Patterns.Fill(MiB, 0xbb), all[(512 * 1024)..(1536 * 1024)]);
            Assert.Equal(Patterns.Fill(64 * 1024, 0xab), all[(4 * MiB)..(4 * MiB + 64 * 1024)]);
            Assert.Equal(Errno.EPERM, (await Assert.ThrowsAsync<BlockException>(async () => await q0.WriteAsync(0, new byte[512]))).Errno);
        }

        Qcow2Images.AssertClean(dir.File("top.qcow2"));
        Qcow2Images.AssertClean(dir.File("s1.qcow2"));
        var before = Qcow2Images.OracleRead(dir.File("top.qcow2"), dir);
        Assert.Equal(Patterns.Fill(MiB, 0xaa), before[..MiB]);
        Assert.Equal(Patterns.Fill(MiB, 0), before[MiB..(2 * MiB)]);
        var after = Qcow2Images.OracleRead(dir.File("s1.qcow2"), dir);
        Assert.Equal(Patterns.Fill(512 * 1024, 0xaa), after[..(512 * 1024)]);
        Assert.Equal(Patterns.Fill(MiB, 0xbb), after[(512 * 1024)..(1536 * 1024)]);
        Assert.Equal(dir.File("top.qcow2"), (string?)QemuImg.Info(dir.File("s1.qcow2"), "qcow2")["backing-filename"]);
    }

    [Fact]
    public async Task Writes_in_flight_while_a_snapshot_is_taken_all_complete_and_land_in_one_layer_or_the_other()
    {
        using var dir = new TempDirectory();
        const int Writers = 4, BlocksPerWriter = 64, Block = 4096;
        await using (var graph = Qcow2Images.NewGraph())
        {
            var q0 = await AddTopAsync(graph, dir);
            var device = graph.CreateBackend(q0, new BlockBackendOptions { Name = "drive0" });
            using var go = new ManualResetEventSlim();
            var writers = Enumerable.Range(0, Writers).Select(w => Task.Run(async () =>
            {
                go.Wait();
                for (int i = 0; i < BlocksPerWriter; i++)
                {
                    long offset = ((long)i * Writers + w) * Block;
                    await device.WriteAsync(offset, Patterns.Fill(Block, (byte)(w + 1)));
                }
            })).ToArray();
            go.Set();
            await graph.SnapshotSyncAsync("drive0", null, dir.File("s1.qcow2"));
            await Task.WhenAll(writers);

            var all = await Qcow2Images.ReadAllAsync(device);
            for (int i = 0; i < BlocksPerWriter * Writers; i++)
                Assert.Equal(Patterns.Fill(Block, (byte)(i % Writers + 1)), all[(i * Block)..((i + 1) * Block)]);
        }
        Qcow2Images.AssertClean(dir.File("top.qcow2"));
        Qcow2Images.AssertClean(dir.File("s1.qcow2"));
    }

    [Fact]
    public async Task A_snapshot_of_a_node_nothing_uses_keeps_the_overlay_as_a_node_to_delete_unlike_qemu_7_2_which_drops_it()
    {
        using var dir = new TempDirectory();
        await using var graph = Qcow2Images.NewGraph();
        var q0 = await AddTopAsync(graph, dir);
        var overlay = await graph.SnapshotSyncAsync(null, "q0", dir.File("s1.qcow2"), "s1");
        Assert.Same(overlay, graph.FindNode("s1"));
        Assert.True(overlay.IsMonitorOwned);
        Assert.True(q0.ReadOnly);

        var e = await Assert.ThrowsAsync<BlockException>(async () => await graph.DeleteNodeAsync("q0"));
        Assert.Equal("Node 'q0' is busy: node is used as backing hd of 's1'", e.Message);
        await graph.DeleteNodeAsync("s1");
        Assert.Null(graph.FindNode("s1"));
        await graph.DeleteNodeAsync("q0");
        Assert.Null(graph.FindNode("q0"));
    }

    [Fact]
    public async Task A_persistent_bitmap_of_the_old_top_stays_on_it_read_only_and_lands_in_its_image()
    {
        using var dir = new TempDirectory();
        await using (var graph = Qcow2Images.NewGraph())
        {
            var q0 = await AddTopAsync(graph, dir);
            var device = graph.CreateBackend(q0);
            await graph.AddDirtyBitmapAsync("q0", "p", persistent: true);
            await graph.AddDirtyBitmapAsync("q0", "t");
            await device.WriteAsync(0, Patterns.Fill(65536, 1));

            await graph.SnapshotSyncAsync(null, "q0", dir.File("s1.qcow2"), "s1");
            await device.WriteAsync(MiB, Patterns.Fill(65536, 2));

            var p = q0.GetDirtyBitmap("p");
            Assert.True(p.ReadOnly);
            Assert.Equal(65536, p.Count);
            Assert.Equal(65536, q0.GetDirtyBitmap("t").Count);
            var e = Assert.Throws<BlockException>(() => graph.ClearDirtyBitmap("q0", "p"));
            Assert.Equal("Bitmap 'p' is readonly and cannot be modified", e.Message);
        }
        var bitmaps = QemuImg.Info(dir.File("top.qcow2"), "qcow2")["format-specific"]!["data"]!["bitmaps"]!.AsArray();
        Assert.Equal("p", (string?)Assert.Single(bitmaps)!["name"]);
        Qcow2Images.AssertClean(dir.File("top.qcow2"));
    }

    [Fact]
    public async Task A_snapshot_refuses_a_node_whose_parent_cannot_change_its_child_while_open()
    {
        using var dir = new TempDirectory();
        await using var graph = Qcow2Images.NewGraph();
        await AddTopAsync(graph, dir);
        var e = await Assert.ThrowsAsync<BlockException>(async () => await graph.SnapshotSyncAsync(null, "f0", dir.File("s1.qcow2"), "s1"));
        Assert.Equal(Errno.ENOTSUP, e.Errno);
        Assert.Equal("Cannot put an overlay above node 'f0': node 'q0' uses it as 'file' and cannot change that child while open", e.Message);
        Assert.Null(graph.FindNode("s1"));
        Assert.Same(graph.FindNode("f0"), graph.FindNode("q0")!.PrimaryChild!.Node);
    }

    [Fact]
    public async Task Resize_while_a_device_writes_grows_the_image_and_every_write_completes()
    {
        using var dir = new TempDirectory();
        await using (var graph = Qcow2Images.NewGraph())
        {
            var q0 = await AddTopAsync(graph, dir, size: "4M");
            var device = graph.CreateBackend(q0, new BlockBackendOptions { Name = "drive0" });
            var writer = Task.Run(async () =>
            {
                for (int i = 0; i < 256; i++)
                    await device.WriteAsync((i % 64) * 65536L, Patterns.Fill(65536, (byte)(i % 64 + 1)));
            });
            await graph.ResizeAsync("drive0", null, 8 * MiB);
            await writer;
            Assert.Equal(8 * MiB, device.Length);
            await device.WriteAsync(7 * MiB, Patterns.Fill(65536, 0x77));
        }
        Qcow2Images.AssertClean(dir.File("top.qcow2"));
        var data = Qcow2Images.OracleRead(dir.File("top.qcow2"), dir);
        Assert.Equal(8 * MiB, data.Length);
        for (int i = 0; i < 64; i++)
            Assert.Equal(Patterns.Fill(65536, (byte)(i + 1)), data[(i * 65536)..((i + 1) * 65536)]);
        Assert.Equal(Patterns.Fill(65536, 0x77), data[(7 * MiB)..(7 * MiB + 65536)]);
    }

    [Fact]
    public async Task Change_backing_file_on_a_read_only_image_keeps_its_open_backing_node_and_leaves_it_read_only()
    {
        using var dir = new TempDirectory();
        QemuImg.Create("qcow2", dir.File("base.qcow2"), "1M");
        QemuIo.RunChecked(dir.File("base.qcow2"), "qcow2", "write -P 0x5a 0 64k");
        QemuImg.Run("create", "-q", "-f", "qcow2", "-b", dir.File("base.qcow2"), "-F", "qcow2", dir.File("mid.qcow2")).EnsureSuccess("qemu-img create");
        QemuImg.Run("create", "-q", "-f", "qcow2", "-b", dir.File("mid.qcow2"), "-F", "qcow2", dir.File("top.qcow2")).EnsureSuccess("qemu-img create");
        await using (var graph = Qcow2Images.NewGraph())
        {
            var device = await graph.OpenImageAsync(dir.File("top.qcow2"), new ImageOpenOptions { Format = "qcow2", Backend = new BlockBackendOptions { Name = "d" } });
            var mid = device.Root!.Backing!.Node;
            var baseNode = mid.Backing!.Node;
            await graph.ChangeBackingFileAsync("d", mid.NodeName, "no-such-file.qcow2");
            Assert.True(mid.ReadOnly);
            Assert.Same(baseNode, mid.Backing!.Node);
            Assert.Equal("no-such-file.qcow2", mid.GetImageInfo().BackingFilename);
            var read = new byte[65536];
            await device.ReadAsync(0, read);
            Assert.Equal(Patterns.Fill(65536, 0x5a), read);
        }
        var info = QemuImg.Info(dir.File("mid.qcow2"), "qcow2");
        Assert.Equal("no-such-file.qcow2", (string?)info["backing-filename"]);
        Assert.Equal("qcow2", (string?)info["backing-filename-format"]);
    }
}
