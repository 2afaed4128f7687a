using BenchmarkDotNet.Attributes;
using Block.Drivers.File;
using Block.Drivers.Null;
using Block.Drivers.Quorum;
using Block.Drivers.Raw;
using Block.Graph;
using Block.Io;
using Block.Options;
using Block.Qapi;

namespace Block.Bench;

/// <summary>
/// A 3-way quorum against one of its children alone, on 64 MiB raw copies: random 4 KiB reads from the page cache
/// (every child read, compared, no copy) and 64 KiB writes with <c>cache.direct=on</c> (the copies written at once).
/// The ratios are the figures: reads should cost at most 3.5× one child, writes keep at least 0.8× its throughput.
/// </summary>
/// <remarks>
/// The raw copies share this machine's one disk, so a quorum's direct writes can reach only a third of one child's
/// throughput there however they are issued. The device pair gives each child a device of its own: <c>null-co</c> with
/// a 100 µs write latency, as a fast SSD, where three copies written in parallel take one latency and three written in
/// turn take three.
/// </remarks>
[MemoryDiagnoser]
public class QuorumBenchmarks
{
    private const int Ops = 256;
    private const long Size = 64L << 20;
    private string _dir = null!;
    private BlockGraph _graph = null!;
    private BlockBackend _single = null!;
    private BlockBackend _quorum = null!;
    private BlockGraph _directGraph = null!;
    private BlockBackend _singleDirect = null!;
    private BlockBackend _quorumDirect = null!;
    private BlockGraph _deviceGraph = null!;
    private BlockBackend _singleDevice = null!;
    private BlockBackend _quorumDevice = null!;
    private AlignedBuffer _buffer4K = null!;
    private AlignedBuffer _buffer64K = null!;
    private long[] _offsets = null!;

    [GlobalSetup]
    public void Setup()
    {
        _dir = Directory.CreateTempSubdirectory("blk-quorum-bench").FullName;
        var data = new byte[Size];
        new Random(3).NextBytes(data);
        for (int i = 0; i < 8; i++)
            File.WriteAllBytes(Path.Combine(_dir, $"c{i}.raw"), data);
        _graph = new BlockGraph();
        _single = _graph.CreateBackend(Add(_graph, Raw("s", 0, direct: false)), new BlockBackendOptions { Accounting = false });
        _quorum = _graph.CreateBackend(Add(_graph, Quorum("q", 1, direct: false)), new BlockBackendOptions { Accounting = false });
        _directGraph = new BlockGraph();
        _singleDirect = _directGraph.CreateBackend(Add(_directGraph, Raw("sd", 4, direct: true)), new BlockBackendOptions { Accounting = false });
        _quorumDirect = _directGraph.CreateBackend(Add(_directGraph, Quorum("qd", 5, direct: true)), new BlockBackendOptions { Accounting = false });
        _deviceGraph = new BlockGraph();
        _singleDevice = _deviceGraph.CreateBackend(Add(_deviceGraph, Device("sv")), new BlockBackendOptions { Accounting = false });
        _quorumDevice = _deviceGraph.CreateBackend(Add(_deviceGraph, new BlockdevOptionsQuorum
        {
            NodeName = "qv",
            VoteThreshold = 2,
            Children = [.. Enumerable.Range(0, 3).Select(i => (BlockdevRef)Device($"qv{i}"))],
        }), new BlockBackendOptions { Accounting = false });
        _buffer4K = AlignedBuffer.Allocate(4096);
        _buffer64K = AlignedBuffer.Allocate(65536);
        var rng = new Random(7);
        _offsets = [.. Enumerable.Range(0, Ops).Select(_ => rng.NextInt64(Size / 4096) * 4096)];
    }

    private static BlockNode Add(BlockGraph graph, BlockdevOptions options) => graph.AddNodeAsync(options).AsTask().GetAwaiter().GetResult();

    private BlockdevOptionsRaw Raw(string name, int child, bool direct) => new()
    {
        NodeName = name,
        File = new BlockdevOptionsFile
        {
            Filename = Path.Combine(_dir, $"c{child}.raw"),
            Aio = BlockdevAioOptions.Threads,
            Cache = new BlockdevCacheOptions { Direct = direct },
        },
    };

    private static BlockdevOptionsNull Device(string name) => new()
    {
        NodeName = name,
        Size = Size,
        LatencyNs = 100_000,
        Cache = new BlockdevCacheOptions { Direct = true },
    };

    private BlockdevOptionsQuorum Quorum(string name, int firstChild, bool direct) => new()
    {
        NodeName = name,
        VoteThreshold = 2,
        Children = [.. Enumerable.Range(firstChild, 3).Select(i => (BlockdevRef)Raw($"{name}{i}", i, direct))],
    };

    [GlobalCleanup]
    public void Cleanup()
    {
        _graph.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _directGraph.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _deviceGraph.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _buffer4K.Dispose();
        _buffer64K.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    /// <summary>Random 4 KiB reads of one child alone.</summary>
    [Benchmark(OperationsPerInvoke = Ops, Baseline = true)]
    public Task SingleRandomRead4K() => ReadAsync(_single);

    /// <summary>Random 4 KiB reads of the 3-way quorum.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public Task QuorumRandomRead4K() => ReadAsync(_quorum);

    /// <summary>64 KiB writes of one child alone, O_DIRECT.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public Task SingleWrite64KDirect() => WriteAsync(_singleDirect);

    /// <summary>64 KiB writes of the 3-way quorum, O_DIRECT.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public Task QuorumWrite64KDirect() => WriteAsync(_quorumDirect);

    /// <summary>64 KiB writes of one 100 µs device alone.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public Task SingleWrite64KDevice() => WriteAsync(_singleDevice);

    /// <summary>64 KiB writes of a 3-way quorum of 100 µs devices.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public Task QuorumWrite64KDevice() => WriteAsync(_quorumDevice);

    private async Task ReadAsync(BlockBackend backend)
    {
        var buffer = new IoVector(_buffer4K.Memory[..4096]);
        foreach (long offset in _offsets)
            await backend.ReadAsync(offset, buffer);
    }

    private async Task WriteAsync(BlockBackend backend)
    {
        var buffer = new IoVector(_buffer64K.Memory[..65536]);
        foreach (long offset in _offsets)
            await backend.WriteAsync(offset / 65536 * 65536, buffer);
    }
}
