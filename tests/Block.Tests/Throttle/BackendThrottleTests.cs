using Block.Graph;
using Block.TestSupport;
using Block.Throttle;

namespace Block.Tests.Throttle;

/// <summary>Throttling at a backend: which requests wait, what a drain and a reconfiguration do, and what query-block shows.</summary>
public sealed class BackendThrottleTests
{
    private static async Task<(BlockGraph Graph, ManualTimeProvider Clock, BlockBackend A, BlockBackend B)> TwoBackendsAsync()
    {
        var clock = new ManualTimeProvider();
        var graph = new BlockGraph(new BlockGraphOptions { TimeProvider = clock });
        var node = await graph.AddNodeAsync(graph.Parser.ParseKeyValue("driver=null-co,node-name=n,size=64M"));
        var a = graph.CreateBackend(node, new BlockBackendOptions { Name = "a" });
        var b = graph.CreateBackend(node, new BlockBackendOptions { Name = "b" });
        return (graph, clock, a, b);
    }

    [Fact]
    public async Task A_write_over_the_budget_waits_for_the_clock_without_a_thread_and_discards_and_flushes_never_wait()
    {
        var (graph, clock, a, _) = await TwoBackendsAsync();
        await using var _ = graph;
        graph.SetIoThrottle("a", null, new ThrottleConfig { BpsTotal = new(1 << 20) }, null);
        var data = new byte[1 << 20];
        await a.WriteAsync(0, data);
        var second = a.WriteAsync(0, data).AsTask();
        await Task.Delay(50);
        Assert.False(second.IsCompleted);
        await a.DiscardAsync(0, 4096);
        await a.FlushAsync();
        clock.Advance(TimeSpan.FromSeconds(0.9));
        await second.WaitAsync(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task Backends_in_one_group_share_its_budget_and_query_block_shows_the_group()
    {
        var (graph, clock, a, b) = await TwoBackendsAsync();
        await using var _ = graph;
        graph.SetIoThrottle("a", null, new ThrottleConfig { IopsTotal = new(10) }, "g");
        graph.SetIoThrottle("b", null, new ThrottleConfig { IopsTotal = new(10) }, "g");
        Assert.Same(a.Throttle!.Group, b.Throttle!.Group);
        var buffer = new byte[512];
        // A tenth of a second of budget passes at once (one operation, and one more while the bucket holds exactly
        // one): then b waits for a's use.
        await a.ReadAsync(0, buffer);
        await a.ReadAsync(0, buffer);
        var waiting = b.ReadAsync(0, buffer).AsTask();
        Assert.False(waiting.IsCompleted);
        clock.Advance(TimeSpan.FromSeconds(0.1));
        await waiting.WaitAsync(TimeSpan.FromSeconds(30));
        var info = graph.QueryBlock().Single(i => i.Device == "b").Inserted!;
        Assert.Equal(("g", 10L, (long?)null), (info.Group, info.Iops, info.IopsMax));
    }

    [Fact]
    public async Task Turning_limits_off_leaves_the_group_and_lets_queued_requests_pass()
    {
        var (graph, _, a, _) = await TwoBackendsAsync();
        await using var _g = graph;
        graph.SetIoThrottle("a", null, new ThrottleConfig { IopsTotal = new(1) }, null);
        var queued = Enumerable.Range(0, 4).Select(_ => a.WriteAsync(0, new byte[512]).AsTask()).ToList();
        Assert.Contains(queued, t => !t.IsCompleted);
        graph.SetIoThrottle("a", null, ThrottleConfig.Unlimited, "ignored");
        await Task.WhenAll(queued).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Null(a.Throttle);
        Assert.Null(graph.ThrottleGroups.Find("a"));
        Assert.Null(graph.QueryBlock().Single(i => i.Device == "a").Inserted!.Group);
    }

    [Fact]
    public async Task A_drain_lets_queued_requests_pass_so_a_graph_change_never_waits_for_budget()
    {
        var (graph, _, a, _) = await TwoBackendsAsync();
        await using var _g = graph;
        graph.SetIoThrottle("a", null, new ThrottleConfig { IopsTotal = new(1) }, null);
        var queued = Enumerable.Range(0, 4).Select(_ => a.ReadAsync(0, new byte[512]).AsTask()).ToList();
        Assert.Contains(queued, t => !t.IsCompleted);
        await using (await graph.BeginDrainAsync())
            await Task.WhenAll(queued).WaitAsync(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task Requests_a_drain_lets_pass_are_accounted_so_the_budget_after_it_knows_of_them()
    {
        var (graph, _, a, _) = await TwoBackendsAsync();
        await using var _g = graph;
        graph.SetIoThrottle("a", null, new ThrottleConfig { IopsTotal = new(1) }, null);
        var queued = Enumerable.Range(0, 4).Select(_ => a.ReadAsync(0, new byte[512]).AsTask()).ToList();
        int waiting = queued.Count(t => !t.IsCompleted);
        Assert.True(waiting > 0);
        double before = a.Throttle!.Group.State.Level(ThrottleBucketType.IopsTotal);
        await using (await graph.BeginDrainAsync())
            await Task.WhenAll(queued).WaitAsync(TimeSpan.FromSeconds(30));
        // The manual clock stands still, so nothing leaked: every released request is in the bucket.
        Assert.Equal(before + waiting, a.Throttle!.Group.State.Level(ThrottleBucketType.IopsTotal));
    }

    [Fact]
    public async Task Invalid_limits_are_refused_with_qemus_message_and_change_nothing()
    {
        var (graph, _, a, _) = await TwoBackendsAsync();
        await using var _g = graph;
        var e = Assert.Throws<BlockOptionsException>(() =>
            graph.SetIoThrottle("a", null, new ThrottleConfig { BpsTotal = new(1000, 100) }, null));
        Assert.Equal("bps_max/iops_max cannot be lower than bps/iops", e.Message);
        Assert.Null(a.Throttle);
        Assert.Equal("Need exactly one of 'device' and 'id'",
            Assert.Throws<BlockException>(() => graph.SetIoThrottle(null, null, ThrottleConfig.Unlimited, null)).Message);
    }

    [Fact]
    public async Task A_removed_backend_leaves_its_group_and_a_group_made_for_it_goes_with_it()
    {
        var (graph, _, a, b) = await TwoBackendsAsync();
        await using var _g = graph;
        graph.SetIoThrottle("a", null, new ThrottleConfig { IopsTotal = new(10) }, null);
        graph.SetIoThrottle("b", null, new ThrottleConfig { IopsTotal = new(10) }, "a");
        await a.DisposeAsync();
        Assert.Equal([b.Throttle!], graph.ThrottleGroups.Find("a")!.Members);
        await b.DisposeAsync();
        Assert.Null(graph.ThrottleGroups.Find("a"));
    }
}
