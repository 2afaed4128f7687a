using Block.Graph;
using Block.Qapi;
using Block.TestSupport;

namespace Block.Qcow2.Tests.Graph;

/// <summary>Backup through the library: guest writes racing the copy, cancels at random points, the seed's busy rule.</summary>
public sealed class BackupJobTests
{
    private const int DiskBytes = 16 << 20;

    /// <summary>src.qcow2 (16 MiB, random data in every other MiB) with a device "dev", and an empty target node "t".</summary>
    private static async Task<(BlockGraph Graph, BlockBackend Device)> OpenAsync(TempDirectory dir)
    {
        QemuImg.Create("qcow2", dir.File("src.qcow2"), "16M");
        QemuImg.Create("qcow2", dir.File("t.qcow2"), "16M");
        var graph = Qcow2Images.NewGraph();
        var src = await graph.AddNodeAsync(graph.Parser.ParseJson(Node("s", dir.File("src.qcow2"))));
        await graph.AddNodeAsync(graph.Parser.ParseJson(Node("t", dir.File("t.qcow2"))));
        var device = graph.CreateBackend(src, new BlockBackendOptions { Name = "dev" });
        for (int mib = 0; mib < 16; mib += 2)
            await device.WriteAsync(mib << 20, Patterns.Random(1 << 20, mib));
        return (graph, device);
    }

    private static string Node(string name, string path) => new System.Text.Json.Nodes.JsonObject
    {
        ["driver"] = "qcow2", ["node-name"] = name,
        ["file"] = new System.Text.Json.Nodes.JsonObject { ["driver"] = "file", ["filename"] = path },
    }.ToJsonString();

    /// <summary>Random writes (and write-zeroes) through the device until <paramref name="until"/> completes, at least <paramref name="min"/>.</summary>
    private static async Task<int> WriteAtRandomAsync(BlockBackend device, Random random, Task until, int min)
    {
        int count = 0;
        while (!until.IsCompleted || count < min)
        {
            long offset = random.Next(0, DiskBytes / 512 - 512) * 512L;
            int length = random.Next(1, 512) * 512;
            if (random.Next(8) == 0)
            {
                await device.WriteZeroesAsync(offset, length);
            }
            else
            {
                var data = new byte[length];
                random.NextBytes(data);
                await device.WriteAsync(offset, data);
            }
            count++;
        }
        return count;
    }

    [Theory]
    [InlineData(MirrorSyncMode.Full, 1)]
    [InlineData(MirrorSyncMode.Full, 2)]
    [InlineData(MirrorSyncMode.Incremental, 3)]
    public async Task A_backup_while_writers_hit_the_source_at_random_equals_the_disk_at_job_start(MirrorSyncMode sync, int seed)
    {
        using var dir = new TempDirectory();
        var (graph, device) = await OpenAsync(dir);
        await using (graph)
        {
            var source = graph.FindNode("s")!;
            if (sync == MirrorSyncMode.Incremental)
            {
                // Everything dirty: the incremental copies the whole disk, and must see it as at the start too.
                var bm = await source.AddDirtyBitmapAsync("bm");
                bm.SetDirty(0, DiskBytes);
            }
            var atStart = await Qcow2Images.ReadAllAsync(device);
            // A speed limit keeps the job running while the writers run: 8 MiB/s over 16 MiB.
            var job = await graph.BlockdevBackupAsync("j", "dev", "t", sync, sync == MirrorSyncMode.Incremental ? "bm" : null, speed: 8 << 20);
            int writes = await WriteAtRandomAsync(device, new Random(seed), job.Completion, 200);
            await job.Completion;
            Assert.True(writes >= 200);
            var target = graph.FindNode("t")!;
            var copy = new byte[DiskBytes];
            await target.ReadAsync(0, copy);
            Assert.True(atStart.AsSpan().SequenceEqual(copy), "the target is not the disk at job start");
            if (sync == MirrorSyncMode.Incremental)
                Assert.False(source.GetDirtyBitmap("bm").Busy);
        }
        Qcow2Images.AssertClean(dir.File("t.qcow2"));
        Qcow2Images.AssertClean(dir.File("src.qcow2"));
    }

    [Fact]
    public async Task An_incremental_backup_cancelled_at_random_points_gives_its_bits_back_and_leaves_the_graph_usable()
    {
        using var dir = new TempDirectory();
        var (graph, device) = await OpenAsync(dir);
        await using (graph)
        {
            var source = graph.FindNode("s")!;
            var bm = await source.AddDirtyBitmapAsync("bm");
            var random = new Random(14);
            for (int round = 0; round < 12; round++)
            {
                bm.Clear();
                for (int i = 0; i < 8; i++)
                    bm.SetDirty(random.Next(0, DiskBytes / 65536) * 65536L, 65536);
                var before = bm.DirtyRanges();

                var job = await graph.BlockdevBackupAsync("j", "dev", "t", MirrorSyncMode.Incremental, "bm", speed: random.Next(0, 2) * (1 << 20));
                Assert.True(bm.Busy);
                await Assert.ThrowsAsync<BlockException>(async () => await source.RemoveDirtyBitmapAsync("bm"));
                long written = random.Next(0, DiskBytes / 512 - 8) * 512L;
                var write = device.WriteAsync(written, Patterns.Fill(4096, (byte)round)).AsTask();
                await Task.Delay(random.Next(0, 4));
                bool cancelled = !job.Completion.IsCompleted;
                if (cancelled)
                {
                    try
                    {
                        job.Cancel();
                    }
                    catch (BlockException)
                    {
                        cancelled = false; // it finished meanwhile
                    }
                }
                await job.Completion;
                await write;
                Assert.False(bm.Busy);
                // The write made during the job is recorded either way.
                Assert.True(bm.IsDirty(written));
                if (cancelled && graph.Jobs.Count == 0 && job.IsCancelled)
                {
                    foreach (var (offset, length) in before)
                        Assert.True(bm.IsDirty(offset) && bm.IsDirty(offset + length - 1), $"bits at {offset} not given back");
                }
            }

            // The graph is usable: a full backup runs to its end and copies the disk.
            var full = await graph.BlockdevBackupAsync("f", "dev", "t", MirrorSyncMode.Full);
            await full.Completion;
            var expected = await Qcow2Images.ReadAllAsync(device);
            var copy = new byte[DiskBytes];
            await graph.FindNode("t")!.ReadAsync(0, copy);
            Assert.True(expected.AsSpan().SequenceEqual(copy));
        }
        Qcow2Images.AssertClean(dir.File("t.qcow2"));
    }

    [Fact]
    public async Task A_second_backup_of_one_source_is_refused_as_the_seed_refuses_it()
    {
        using var dir = new TempDirectory();
        var (graph, _) = await OpenAsync(dir);
        await using (graph)
        {
            QemuImg.Create("qcow2", dir.File("t2.qcow2"), "16M");
            await graph.AddNodeAsync(graph.Parser.ParseJson(Node("t2", dir.File("t2.qcow2"))));
            var job = await graph.BlockdevBackupAsync("a", "dev", "t", MirrorSyncMode.None);
            var e = await Assert.ThrowsAsync<BlockException>(async () => await graph.BlockdevBackupAsync("b", "dev", "t2", MirrorSyncMode.Full));
            Assert.Equal("Node 'dev' is busy: block device is in use by block job: backup", e.Message);
            job.Cancel();
            await job.Completion;
            var second = await graph.BlockdevBackupAsync("b", "dev", "t2", MirrorSyncMode.Full);
            await second.Completion;
        }
    }
}
