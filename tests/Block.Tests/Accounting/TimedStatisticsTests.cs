using Block.Graph;
using Block.TestSupport;

namespace Block.Tests.Accounting;

/// <summary>
/// query-blockstats on the graph's clock: with a manual clock, latencies, idle time and the timed statistics of each
/// <c>stats-intervals</c> interval are exact, and a request's latency runs from its submission, as QEMU's devices
/// account it.
/// </summary>
public sealed class TimedStatisticsTests
{
    [Fact]
    public async Task Latency_idle_time_and_interval_windows_follow_the_graphs_clock()
    {
        var clock = new ManualTimeProvider();
        await using var graph = new BlockGraph(new BlockGraphOptions { TimeProvider = clock });
        var node = await graph.AddNodeAsync(graph.Parser.ParseKeyValue("driver=null-co,node-name=n,size=1M"));
        var backend = graph.CreateBackend(node, new BlockBackendOptions { Name = "d0", StatsIntervals = [60, 5] });
        var buffer = new byte[4096];
        Assert.Null(graph.QueryBlockStats()[0].Stats.IdleTimeNs);

        await backend.ReadAsync(0, buffer);
        // A write submitted during a drain waits for it: its latency is the quarter second the drain lasted.
        var drain = await graph.BeginDrainAsync();
        var held = backend.WriteAsync(4096, buffer).AsTask();
        clock.Advance(TimeSpan.FromMilliseconds(250));
        await drain.DisposeAsync();
        await held.WaitAsync(TimeSpan.FromSeconds(30));
        clock.Advance(TimeSpan.FromSeconds(2));

        var stats = graph.QueryBlockStats()[0].Stats;
        Assert.Equal((1L, 1L, 4096L, 4096L), (stats.RdOperations, stats.WrOperations, stats.RdBytes, stats.WrBytes));
        Assert.Equal((0L, 250_000_000L, 2_000_000_000L), (stats.RdTotalTimeNs, stats.WrTotalTimeNs, stats.IdleTimeNs));
        Assert.Equal(8192L, stats.WrHighestOffset);
        Assert.Equal([60L, 5L], stats.TimedStats.Select(t => t.IntervalLength));
        foreach (var timed in stats.TimedStats)
        {
            Assert.Equal((250_000_000L, 250_000_000L, 250_000_000L), (timed.MinWrLatencyNs, timed.MaxWrLatencyNs, timed.AvgWrLatencyNs));
            Assert.Equal((0L, 0L, 0L), (timed.MinRdLatencyNs, timed.MaxRdLatencyNs, timed.AvgRdLatencyNs));
            Assert.Equal(0L, timed.MaxFlushLatencyNs);
        }
        // The 60 s interval reads the window that expires first: it began half a period (40 s) before the first
        // sample's window, so 42.25 s have elapsed in it.
        Assert.Equal(250e6 / 42.25e9, stats.TimedStats[0].AvgWrQueueDepth, 12);

        // Five more seconds: both windows of the 5 s interval (period 6.67 s) have expired, the 60 s ones have not.
        clock.Advance(TimeSpan.FromSeconds(5));
        stats = graph.QueryBlockStats()[0].Stats;
        Assert.Equal((0L, 0L, 0L), (stats.TimedStats[1].MinWrLatencyNs, stats.TimedStats[1].MaxWrLatencyNs, stats.TimedStats[1].AvgWrLatencyNs));
        Assert.Equal(250_000_000L, stats.TimedStats[0].MaxWrLatencyNs);
        Assert.Equal(7_000_000_000L, stats.IdleTimeNs);
    }

    [Fact]
    public async Task An_invalid_request_counts_as_invalid_and_touches_idle_time_only_when_account_invalid_is_on()
    {
        var clock = new ManualTimeProvider();
        await using var graph = new BlockGraph(new BlockGraphOptions { TimeProvider = clock });
        var node = await graph.AddNodeAsync(graph.Parser.ParseKeyValue("driver=null-co,node-name=n,size=1M"));
        var backend = graph.CreateBackend(node, new BlockBackendOptions { Name = "d0" });
        await backend.ReadAsync(0, new byte[512]);
        clock.Advance(TimeSpan.FromSeconds(1));
        await Assert.ThrowsAnyAsync<BlockException>(() => backend.ReadAsync(1 << 20, new byte[512]).AsTask());
        var stats = graph.QueryBlockStats()[0].Stats;
        Assert.Equal((1L, 1L, 0L, 0L), (stats.RdOperations, stats.InvalidRdOperations, stats.FailedRdOperations, stats.IdleTimeNs!.Value));

        backend.Stats.AccountInvalid = false;
        clock.Advance(TimeSpan.FromSeconds(1));
        await Assert.ThrowsAnyAsync<BlockException>(() => backend.WriteAsync(1 << 20, new byte[512]).AsTask());
        stats = graph.QueryBlockStats()[0].Stats;
        Assert.Equal((1L, 1_000_000_000L, false), (stats.InvalidWrOperations, stats.IdleTimeNs!.Value, stats.AccountInvalid));
    }
}
