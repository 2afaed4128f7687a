using Block.Graph;
using Block.Drivers.Null;

namespace Block.Tests;

public class InFlightCounterTests
{
    [Fact]
    public async Task Requests_begun_and_ended_on_different_threads_count_back_to_zero()
    {
        var counter = new InFlightCounter();
        var tokens = new System.Collections.Concurrent.ConcurrentQueue<int>();
        // Begin on many pool threads (so on several stripes), end every one on other threads.
        await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() =>
        {
            for (int i = 0; i < 1000; i++)
                tokens.Enqueue(counter.Begin());
        })));
        Assert.Equal(8000, counter.Count);
        await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() =>
        {
            while (tokens.TryDequeue(out int token))
                counter.End(token);
        })));
        Assert.True(counter.IsZero);
    }

    [Fact]
    public async Task Drain_waits_for_every_request_in_flight_from_several_threads()
    {
        await using var graph = new BlockGraph();
        var backend = await graph.OpenBackendAsync(new BlockdevOptionsNull { Driver = "null-aio", Size = 1 << 20, LatencyNs = 500_000_000 });
        // Each read is issued on a pool thread (so on several stripes); the outer task hands back the read itself.
        var started = System.Diagnostics.Stopwatch.StartNew();
        var issued = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => Task.Run(() => (object)backend.ReadAsync(i * 512, new byte[512]).AsTask())));
        var reads = issued.Cast<Task>().ToArray();
        Assert.True(backend.Root!.InFlight > 0);
        await using (await graph.BeginDrainAsync())
        {
            // What a drain promises: nothing in flight below it, so it lasted the reads' 500 ms. The callers' tasks
            // complete in continuations that may run a moment after the counter reached zero.
            Assert.Equal(0, backend.Root.InFlight);
            Assert.True(started.ElapsedMilliseconds >= 450, $"the drain ended after {started.ElapsedMilliseconds} ms");
        }
        await Task.WhenAll(reads);
    }
}
