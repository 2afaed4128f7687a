using Block.Drivers.Blkdebug;
using Block.Drivers.File;
using Block.Drivers.Null;
using Block.Drivers.Raw;
using Block.Events;
using Block.Graph;
using Block.Qapi;
using Block.TestSupport;

namespace Block.Tests;

/// <summary>Write threshold, accounting, error policies, drain, detect-zeroes, permissions between users.</summary>
public class ServicesTests
{
    [Fact]
    public async Task The_write_threshold_fires_once_with_the_amount_exceeded_and_the_write_proceeds()
    {
        await using var graph = new BlockGraph();
        var events = new List<BlockEvent>();
        graph.EventRaised += events.Add;
        var node = await graph.AddNodeAsync(new BlockdevOptionsNull { NodeName = "n", Size = 1 << 20 });
        graph.SetWriteThreshold("n", 65536);
        await node.WriteAsync(60000, new byte[4096]);
        await node.WriteAsync(70000, new byte[4096]);
        await node.WriteAsync(80000, new byte[4096]);
        // 60000+4096 stays below the threshold; 70000+4096 exceeds it by 8560 and disarms it; the third write is silent.
        var e = Assert.IsType<BlockWriteThresholdEvent>(Assert.Single(events));
        Assert.Equal(8560UL, e.AmountExceeded);
        Assert.Equal(65536UL, e.WriteThreshold);
        Assert.Equal(0, node.WriteThreshold);
        Assert.Equal("""{"node-name":"n","amount-exceeded":8560,"write-threshold":65536}""", e.ToData().ToJsonString());
        Assert.Equal(84096, node.WrHighestOffset);
    }

    [Fact]
    public async Task Accounting_counts_bytes_operations_and_flushes_per_backend()
    {
        await using var graph = new BlockGraph();
        var backend = await graph.OpenBackendAsync(new BlockdevOptionsNull { Size = 1 << 20, ReadZeroes = true }, new BlockBackendOptions { Name = "d0", StatsIntervals = [1] });
        for (int i = 0; i < 10; i++)
            await backend.ReadAsync(i * 4096, new byte[4096]);
        await backend.WriteAsync(0, new byte[512]);
        await backend.FlushAsync();
        var stats = Assert.Single(graph.QueryBlockStats());
        Assert.Equal("d0", stats.Device);
        Assert.Equal(10, stats.Stats.RdOperations);
        Assert.Equal(40960, stats.Stats.RdBytes);
        Assert.Equal(1, stats.Stats.WrOperations);
        Assert.Equal(512, stats.Stats.WrBytes);
        Assert.Equal(1, stats.Stats.FlushOperations);
        Assert.Equal(512, stats.Stats.WrHighestOffset);
        var timed = Assert.Single(stats.Stats.TimedStats);
        Assert.Equal(1, timed.IntervalLength);
        Assert.True(timed.MaxRdLatencyNs >= timed.MinRdLatencyNs);
        var json = QemuJson.Compact(QemuJson.ToNode(stats, QapiJsonContext.Default.BlockStats));
        Assert.Contains("\"rd_operations\": 10", json);
    }

    private static BlockdevOptionsRaw Faulty(string path, string ev, int errno, bool once) => new()
    {
        File = new BlockdevOptionsBlkdebug
        {
            Image = new BlockdevOptionsFile { Filename = path },
            InjectError = [new BlkdebugInjectErrorOptions { Event = ev, Errno = errno, Once = once }],
        },
    };

    [Fact]
    public async Task Report_policy_fails_the_request_and_raises_block_io_error()
    {
        using var dir = new TempDirectory();
        string path = dir.File("a.raw");
        TestImages.CreateZeroFile(path, 1 << 20);
        await using var graph = new BlockGraph();
        var events = new List<BlockEvent>();
        graph.EventRaised += events.Add;
        var backend = await graph.OpenBackendAsync(Faulty(path, "read_aio", 5, once: true), new BlockBackendOptions { Name = "d0" });
        var e = await Assert.ThrowsAsync<BlockException>(async () => await backend.ReadAsync(0, new byte[512]));
        Assert.Equal(Errno.EIO, e.Errno);
        var ev = Assert.IsType<BlockIoErrorEvent>(Assert.Single(events));
        Assert.Equal(BlockErrorAction.Report, ev.Action);
        Assert.Equal(IoOperationType.Read, ev.Operation);
        await backend.ReadAsync(0, new byte[512]);
        Assert.Equal(1, backend.GetStats().Stats.FailedRdOperations);
    }

    [Fact]
    public async Task Ignore_policy_completes_the_request()
    {
        using var dir = new TempDirectory();
        string path = dir.File("a.raw");
        TestImages.CreateZeroFile(path, 1 << 20);
        await using var graph = new BlockGraph();
        var backend = await graph.OpenBackendAsync(Faulty(path, "write_aio", 28, once: false),
            new BlockBackendOptions { WriteErrorPolicy = BlockdevOnError.Ignore });
        await backend.WriteAsync(0, new byte[512]);
        Assert.Equal(1, backend.GetStats().Stats.FailedWrOperations);
    }

    [Fact]
    public async Task Enospc_policy_stops_on_no_space_and_retries_on_resume()
    {
        using var dir = new TempDirectory();
        string path = dir.File("a.raw");
        TestImages.CreateZeroFile(path, 1 << 20);
        await using var graph = new BlockGraph();
        var stopped = new TaskCompletionSource<BlockIoErrorEvent>();
        graph.EventRaised += e =>
        {
            if (e is BlockIoErrorEvent io)
                stopped.TrySetResult(io);
        };
        var backend = await graph.OpenBackendAsync(Faulty(path, "write_aio", 28, once: true),
            new BlockBackendOptions { IoStatusEnabled = true });
        var write = backend.WriteAsync(0, Patterns.Fill(512, 0x42)).AsTask();
        var ev = await stopped.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(BlockErrorAction.Stop, ev.Action);
        Assert.True(ev.NoSpace);
        Assert.False(write.IsCompleted);
        Assert.Equal(BlockDeviceIoStatus.NoSpace, backend.IoStatus);
        backend.Resume();
        await write.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(BlockDeviceIoStatus.Ok, backend.IoStatus);
        Assert.Equal(0x42, File.ReadAllBytes(path)[0]);
    }

    [Fact]
    public async Task Enospc_policy_reports_other_errors()
    {
        using var dir = new TempDirectory();
        string path = dir.File("a.raw");
        TestImages.CreateZeroFile(path, 1 << 20);
        await using var graph = new BlockGraph();
        var backend = await graph.OpenBackendAsync(Faulty(path, "write_aio", 5, once: true));
        Assert.Equal(Errno.EIO, (await Assert.ThrowsAsync<BlockException>(async () => await backend.WriteAsync(0, new byte[512]))).Errno);
    }

    [Fact]
    public async Task Drain_waits_for_requests_in_flight_and_holds_new_ones()
    {
        await using var graph = new BlockGraph();
        var backend = await graph.OpenBackendAsync(new BlockdevOptionsNull { Driver = "null-aio", Size = 1 << 20, LatencyNs = 20_000_000 });
        var inFlight = backend.ReadAsync(0, new byte[512]).AsTask();
        await using (await graph.BeginDrainAsync())
        {
            Assert.True(inFlight.IsCompleted);
            var held = backend.ReadAsync(0, new byte[512]).AsTask();
            await Task.Delay(50);
            Assert.False(held.IsCompleted);
            _ = held;
        }
        await inFlight;
    }

    [Theory]
    [InlineData(BlockdevDetectZeroesOptions.On, false)]
    [InlineData(BlockdevDetectZeroesOptions.Unmap, true)]
    public async Task Detect_zeroes_turns_zero_writes_into_zero_ranges(BlockdevDetectZeroesOptions mode, bool punches)
    {
        using var dir = new TempDirectory();
        string path = dir.File("a.raw");
        using (var f = new FileStream(path, FileMode.Create))
        {
            f.Write(Patterns.Fill(1 << 20, 0x33));
            // On disk, not delayed in the page cache: ext4 reports delayed-allocation pages as data whatever is done to them.
            f.Flush(flushToDisk: true);
        }
        await using var graph = new BlockGraph();
        var options = TestImages.RawOverFile(path, discard: BlockdevDiscardOptions.Unmap) with { DetectZeroes = mode };
        var backend = await graph.OpenBackendAsync(options);
        long before = backend.Root!.AllocatedSize!.Value;
        await backend.WriteAsync(0, new byte[512 << 10]);
        await backend.FlushAsync();
        // The middle of the range is a zero extent now (ext4 may keep the first blocks as data, as it does for QEMU).
        // Checked before the file is read back: ext4 counts cached pages over unwritten extents as data.
        var status = await backend.GetBlockStatusAsync(256 << 10, 64 << 10);
        Assert.True(status.Has(BlockStatusFlags.Zero));
        long after = backend.Root!.AllocatedSize!.Value;
        if (punches)
            Assert.True(after < before, $"allocated {before} -> {after}");
        Assert.All(File.ReadAllBytes(path)[..(512 << 10)], b => Assert.Equal(0, b));
    }

    [Fact]
    public async Task Users_that_do_not_share_write_exclude_writers_in_the_same_process()
    {
        using var dir = new TempDirectory();
        string path = dir.File("a.raw");
        TestImages.CreateZeroFile(path, 1 << 20);
        await using var graph = new BlockGraph();
        var node = await graph.AddNodeAsync(TestImages.RawOverFile(path) with { NodeName = "disk" });
        var reader = graph.CreateBackend(node, new BlockBackendOptions
        {
            Permissions = BlockPermissions.ConsistentRead,
            SharedPermissions = BlockPermissions.ConsistentRead | BlockPermissions.WriteUnchanged,
        });
        var e = Assert.Throws<BlockException>(() => graph.CreateBackend(node));
        Assert.Equal("Permission conflict on node 'disk': permissions 'write' are both required by an unnamed block device (uses node 'disk' " +
            "as 'root' child) and unshared by an unnamed block device (uses node 'disk' as 'root' child).", e.Message);
        await reader.DisposeAsync();
        var writer = graph.CreateBackend(node);
        await writer.WriteAsync(0, new byte[512]);
    }

    [Fact]
    public async Task Nodes_without_users_are_closed_and_monitor_owned_nodes_stay_until_deleted()
    {
        using var dir = new TempDirectory();
        string path = dir.File("a.raw");
        TestImages.CreateZeroFile(path, 1 << 20);
        await using var graph = new BlockGraph();
        var backend = await graph.OpenBackendAsync(TestImages.RawOverFile(path));
        Assert.Equal(2, graph.Nodes.Count);
        await backend.DisposeAsync();
        Assert.Empty(graph.Nodes);

        var node = await graph.AddNodeAsync(TestImages.RawOverFile(path) with { NodeName = "kept" });
        var b2 = graph.CreateBackend(node);
        await b2.DisposeAsync();
        Assert.Equal(2, graph.Nodes.Count);
        Assert.Contains(graph.QueryNamedBlockNodes(), n => n.NodeName == "kept" && n.Driver == "raw");
        Assert.Contains(graph.QueryNamedBlockNodes(), n => n.NodeName!.StartsWith("#block", StringComparison.Ordinal) && n.Driver == "file");
        await graph.DeleteNodeAsync("kept");
        Assert.Empty(graph.Nodes);
    }

    [Fact]
    public async Task Null_co_reads_zeroes_when_asked_and_reports_its_size()
    {
        await using var graph = new BlockGraph();
        var node = await graph.AddNodeAsync(graph.Parser.ParseKeyValue("driver=null-co,node-name=n,size=1000,read-zeroes=on"));
        Assert.Equal(1024, node.Length);
        var buffer = Patterns.Fill(1024, 0xff);
        await node.ReadAsync(0, buffer);
        Assert.All(buffer, b => Assert.Equal(0, b));
        var status = await node.GetBlockStatusAsync(0, 1024);
        Assert.True(status.Has(BlockStatusFlags.Zero) && status.Has(BlockStatusFlags.Allocated));
        Assert.Equal("null-co://", node.Filename);
    }

    [Fact]
    public async Task Null_latency_delays_each_request()
    {
        await using var graph = new BlockGraph();
        var node = await graph.AddNodeAsync(new BlockdevOptionsNull { NodeName = "n", LatencyNs = 200_000 });
        var sw = System.Diagnostics.Stopwatch.StartNew();
        for (int i = 0; i < 20; i++)
            await node.ReadAsync(0, new byte[512]);
        Assert.True(sw.Elapsed >= TimeSpan.FromMilliseconds(4), $"20 requests of 200 µs took {sw.Elapsed}");
    }
}
