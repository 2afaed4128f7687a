using BenchmarkDotNet.Attributes;
using Block.Graph;
using Block.Io;
using Block.Throttle;

namespace Block.Bench;

/// <summary>
/// What throttling costs a request: 4 KiB reads on a null-co node through a backend without limits (the hot path,
/// which must cost nothing and allocate nothing) and through one whose limits never make a request wait (the
/// admission check alone: the group's lock, a leak and the accounting).
/// </summary>
[MemoryDiagnoser]
public class ThrottleBenchmarks
{
    private const int Ops = 1000;
    private BlockGraph _graph = null!;
    private BlockBackend _plain = null!;
    private BlockBackend _throttled = null!;
    private AlignedBuffer _buffer = null!;

    [GlobalSetup]
    public void Setup()
    {
        _graph = new BlockGraph();
        var node = _graph.AddNodeAsync(_graph.Parser.ParseKeyValue("driver=null-co,node-name=n,size=1G")).AsTask().GetAwaiter().GetResult();
        _plain = _graph.CreateBackend(node, new BlockBackendOptions { Name = "plain" });
        _throttled = _graph.CreateBackend(node, new BlockBackendOptions
        {
            Name = "throttled",
            Throttle = new ThrottleConfig { BpsTotal = new(ThrottleConfig.ValueMax), IopsTotal = new(ThrottleConfig.ValueMax) },
        });
        _buffer = AlignedBuffer.Allocate(4096);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _graph.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _buffer.Dispose();
    }

    /// <summary>4 KiB reads through a backend without limits.</summary>
    [Benchmark(Baseline = true, OperationsPerInvoke = Ops)]
    public async Task Read4KUnthrottled()
    {
        var buffer = new IoVector(_buffer.Memory[..4096]);
        for (int i = 0; i < Ops; i++)
            await _plain.ReadAsync((long)i * 4096, buffer);
    }

    /// <summary>4 KiB reads through a backend whose limits are never reached.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public async Task Read4KThrottledNeverWaiting()
    {
        var buffer = new IoVector(_buffer.Memory[..4096]);
        for (int i = 0; i < Ops; i++)
            await _throttled.ReadAsync((long)i * 4096, buffer);
    }
}
