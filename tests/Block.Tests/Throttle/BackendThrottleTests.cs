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

    /// <summary>
    /// Submits <paramref name="count"/> requests of <paramref name="bytes"/> at once to each backend (reads or writes),
    /// then runs the manual clock from timer to timer up to <paramref name="seconds"/>; returns how many of each
    /// backend's requests the throttle admitted by then (submitted minus still queued, known as soon as a timer fires).
    /// </summary>
    private static async Task<int[]> AdmittedWithinAsync(ManualTimeProvider clock, BlockBackend[] backends, bool write, int count, int bytes, double seconds)
    {
        var tasks = new List<Task>();
        var buffer = new byte[bytes];
        foreach (var backend in backends)
        {
            for (int i = 0; i < count; i++)
                tasks.Add(write ? backend.WriteAsync(0, buffer).AsTask() : backend.ReadAsync(0, buffer).AsTask());
        }
        var end = clock.Elapsed + TimeSpan.FromSeconds(seconds);
        while (clock.NextDue is { } due && clock.Elapsed + due <= end)
            clock.Advance(due);
        var admitted = backends.Select(b => count - b.Throttle!.QueuedRequests(write)).ToArray();
        // Let the rest through so that nothing waits when the graph closes.
        foreach (var backend in backends)
            backend.SetIoThrottle(ThrottleConfig.Unlimited, null);
        await Task.WhenAll(tasks).WaitAsync(TimeSpan.FromSeconds(60));
        return admitted;
    }

    [Theory]
    [InlineData(false, 4096)]
    [InlineData(true, 65536)]
    public async Task Two_hundred_iops_or_2_MiB_per_second_hold_the_backends_rate_over_5_seconds_within_10_percent(bool bps, int bytes)
    {
        var (graph, clock, a, _) = await TwoBackendsAsync();
        await using var _g = graph;
        graph.SetIoThrottle("a", null, bps ? new ThrottleConfig { BpsTotal = new(2 << 20) } : new ThrottleConfig { IopsTotal = new(200) }, null);
        int[] admitted = await AdmittedWithinAsync(clock, [a], write: bps, count: 2000, bytes, 5);
        double expected = bps ? 5.0 * (2 << 20) / bytes : 5.0 * 200;
        Assert.InRange(admitted[0], expected * 0.9, expected * 1.1);
    }

    [Fact]
    public async Task Two_backends_in_one_group_each_get_half_of_its_budget()
    {
        var (graph, clock, a, b) = await TwoBackendsAsync();
        await using var _g = graph;
        graph.SetIoThrottle("a", null, new ThrottleConfig { IopsTotal = new(200) }, "g");
        graph.SetIoThrottle("b", null, new ThrottleConfig { IopsTotal = new(200) }, "g");
        int[] admitted = await AdmittedWithinAsync(clock, [a, b], write: false, count: 1000, 4096, 5);
        Assert.InRange(admitted.Sum(), 900, 1100);
        Assert.InRange((double)admitted[0] / admitted[1], 0.8, 1.2);
    }
}
