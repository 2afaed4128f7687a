using System.Diagnostics.Metrics;
using Block.Drivers;
using Block.Drivers.Null;
using Block.Graph;
using Block.Io;
using Block.Metrics;
using Block.Options;
using Block.TestSupport;

namespace Block.Tests;

/// <summary>
/// The <c>Block</c> meter, read the way <c>dotnet-counters</c> and OpenTelemetry read it (a <see cref="MeterListener"/>
/// that subscribes to the meter by name): operations, bytes and durations per backend and operation, and requests in
/// flight.
/// </summary>
/// <remarks>Listeners see every graph of the process, and tests run in parallel: each test names its backend uniquely
/// and looks only at measurements with that device tag.</remarks>
public class MetricsTests
{
    [Fact]
    public async Task Reads_writes_zeroes_discards_and_flushes_are_counted_in_operations_and_bytes_with_durations()
    {
        string device = "metrics-" + Guid.NewGuid().ToString("N");
        using var recorder = new MetricsRecorder(device);
        await using var graph = new BlockGraph();
        var backend = await graph.OpenBackendAsync(new BlockdevOptionsNull { Size = 1 << 20, ReadZeroes = true },
            new BlockBackendOptions { Name = device });
        await backend.ReadAsync(0, new byte[4096]);
        await backend.ReadAsync(8192, new byte[512]);
        await backend.WriteAsync(0, new byte[65536]);
        await backend.WriteZeroesAsync(65536, 4096);
        await backend.DiscardAsync(0, 4096);
        await backend.FlushAsync();

        Assert.Equal(2, recorder.Sum(BlockMetrics.Operations, "read"));
        Assert.Equal(4608, recorder.Sum(BlockMetrics.Bytes, "read"));
        Assert.Equal(1, recorder.Sum(BlockMetrics.Operations, "write"));
        Assert.Equal(65536, recorder.Sum(BlockMetrics.Bytes, "write"));
        Assert.Equal(1, recorder.Sum(BlockMetrics.Operations, "write_zeroes"));
        Assert.Equal(4096, recorder.Sum(BlockMetrics.Bytes, "write_zeroes"));
        Assert.Equal(1, recorder.Sum(BlockMetrics.Operations, "discard"));
        Assert.Equal(4096, recorder.Sum(BlockMetrics.Bytes, "discard"));
        Assert.Equal(1, recorder.Sum(BlockMetrics.Operations, "flush"));
        Assert.Equal(0, recorder.Sum(BlockMetrics.Bytes, "flush"));
        foreach (var operation in new[] { "read", "write", "write_zeroes", "discard", "flush" })
        {
            var durations = recorder.Values(BlockMetrics.Duration, operation);
            Assert.Equal(recorder.Sum(BlockMetrics.Operations, operation), durations.Count);
            Assert.All(durations, d => Assert.True(d >= 0, $"{operation} took {d} s"));
        }
    }

    [Fact]
    public async Task Requests_refused_or_failed_are_not_counted()
    {
        string device = "metrics-" + Guid.NewGuid().ToString("N");
        using var recorder = new MetricsRecorder(device);
        await using var graph = new BlockGraph();
        var backend = await graph.OpenBackendAsync(new BlockdevOptionsNull { Size = 1 << 20 }, new BlockBackendOptions { Name = device });
        await Assert.ThrowsAsync<BlockException>(async () => await backend.ReadAsync(1 << 20, new byte[512]));
        Assert.Equal(0, recorder.Sum(BlockMetrics.Operations, "read"));
    }

    [Fact]
    public async Task An_unnamed_backend_is_tagged_with_its_root_node_name()
    {
        string node = "metrics-" + Guid.NewGuid().ToString("N");
        using var recorder = new MetricsRecorder(node);
        await using var graph = new BlockGraph();
        var backend = await graph.OpenBackendAsync(new BlockdevOptionsNull { NodeName = node, Size = 1 << 20 });
        await backend.ReadAsync(0, new byte[512]);
        Assert.Equal(1, recorder.Sum(BlockMetrics.Operations, "read"));
    }

    [Fact]
    public async Task Requests_in_flight_are_observed_per_backend_until_they_complete()
    {
        string device = "metrics-" + Guid.NewGuid().ToString("N");
        using var recorder = new MetricsRecorder(device);
        var gate = new GateDriver();
        await using var graph = new BlockGraph(new BlockGraphOptions { Drivers = DriverRegistry.CreateDefault().Add(gate) });
        var backend = await graph.OpenBackendAsync(new BlockdevOptionsGate(), new BlockBackendOptions { Name = device });
        Assert.Equal(0, recorder.Observe(BlockMetrics.InFlight));

        var first = backend.ReadAsync(0, new byte[512]).AsTask();
        var second = backend.WriteAsync(4096, new byte[512]).AsTask();
        Assert.Equal(2, recorder.Observe(BlockMetrics.InFlight));
        gate.Open.TrySetResult();
        await first;
        await second;
        Assert.Equal(0, recorder.Observe(BlockMetrics.InFlight));
        Assert.Equal(1, recorder.Sum(BlockMetrics.Operations, "read"));
        Assert.Equal(1, recorder.Sum(BlockMetrics.Operations, "write"));
    }

    /// <summary>A protocol driver whose requests wait until the test opens the gate.</summary>
    private sealed class GateDriver : BlockDriver
    {
        public TaskCompletionSource Open { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override string Name => "gate";

        public override BlockDriverKind Kind => BlockDriverKind.Protocol;

        public override BlockdevOptions ParseOptions(OptionsReader reader, BlockdevOptionsParser parser) => new BlockdevOptionsGate();

        public override ValueTask<NodeDriver> OpenAsync(NodeOpenContext context, CancellationToken cancellationToken) =>
            new(new GateNode(context.Node, Open.Task));

        private sealed class GateNode(BlockNode node, Task open) : NodeDriver(node)
        {
            public override long Length => 1 << 20;

            public override async ValueTask ReadAsync(long offset, IoVector buffers, RequestFlags flags) => await open.ConfigureAwait(false);

            public override async ValueTask WriteAsync(long offset, IoVector buffers, RequestFlags flags) => await open.ConfigureAwait(false);
        }
    }

    private sealed record BlockdevOptionsGate : BlockdevOptions
    {
        [System.Diagnostics.CodeAnalysis.SetsRequiredMembers]
        public BlockdevOptionsGate() => Driver = "gate";
    }
}
