using BenchmarkDotNet.Attributes;
using Block.Drivers.File;
using Block.Drivers.Raw;
using Block.Graph;
using Block.Io;
using Block.Qapi;
using Microsoft.Win32.SafeHandles;

namespace Block.Bench;

/// <summary>
/// Reads and writes on a page-cached raw file through the whole graph (backend → raw → file → engine), against
/// plain <c>pread</c> on the same file. The memory diagnoser proves the request path allocates nothing.
/// </summary>
[MemoryDiagnoser]
public class RawReadBenchmarks
{
    private const int Ops = 1000;
    private BlockGraph _graph = null!;
    private BlockBackend _backend = null!;
    private BlockBackend _accounted = null!;
    private SafeFileHandle _plain = null!;
    private AlignedBuffer _buffer4K = null!;
    private AlignedBuffer _buffer64K = null!;
    private long[] _randomOffsets = null!;
    private long _sequential;

    /// <summary>The I/O engine under test.</summary>
    [Params(BlockdevAioOptions.Inline, BlockdevAioOptions.Threads, BlockdevAioOptions.IoUring)]
    public BlockdevAioOptions Engine { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        string path = BenchImage.Ensure();
        _graph = new BlockGraph();
        var node = _graph.AddNodeAsync(new BlockdevOptionsRaw
        {
            NodeName = "bench",
            File = new BlockdevOptionsFile { Filename = path, Aio = Engine },
        }).AsTask().GetAwaiter().GetResult();
        // A tool's backend (no accounting, like qemu-img's) and a device's (accounting, like a VMM's virtio-blk).
        _backend = _graph.CreateBackend(node, new BlockBackendOptions { Accounting = false });
        _accounted = _graph.CreateBackend(node, new BlockBackendOptions { Accounting = true });
        _plain = File.OpenHandle(path);
        _buffer4K = AlignedBuffer.Allocate(4096);
        _buffer64K = AlignedBuffer.Allocate(65536);
        var rng = new Random(7);
        _randomOffsets = Enumerable.Range(0, Ops).Select(_ => rng.NextInt64(BenchImage.Size / 4096) * 4096).ToArray();
        // Warm the page cache.
        var warm = new byte[1 << 20];
        for (long o = 0; o < BenchImage.Size; o += warm.Length)
            RandomAccess.Read(_plain, warm, o);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _graph.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _plain.Dispose();
        _buffer4K.Dispose();
        _buffer64K.Dispose();
    }

    /// <summary>Random 4 KiB reads through the graph, one at a time.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public async Task RandomRead4K()
    {
        var buffer = new IoVector(_buffer4K.Memory[..4096]);
        foreach (long offset in _randomOffsets)
            await _backend.ReadAsync(offset, buffer);
    }

    /// <summary>Random 4 KiB reads through a device backend that accounts latency and bytes.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public async Task RandomRead4KAccounted()
    {
        var buffer = new IoVector(_buffer4K.Memory[..4096]);
        foreach (long offset in _randomOffsets)
            await _accounted.ReadAsync(offset, buffer);
    }

    /// <summary>Sequential 64 KiB reads through the graph.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public async Task SequentialRead64K()
    {
        var buffer = new IoVector(_buffer64K.Memory[..65536]);
        for (int i = 0; i < Ops; i++)
        {
            await _backend.ReadAsync(_sequential, buffer);
            _sequential = (_sequential + 65536) % BenchImage.Size;
        }
    }

    /// <summary>Sequential 64 KiB writes (overwriting allocated data) through the graph.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public async Task SequentialWrite64K()
    {
        var buffer = new IoVector(_buffer64K.Memory[..65536]);
        for (int i = 0; i < Ops; i++)
        {
            await _backend.WriteAsync(_sequential, buffer);
            _sequential = (_sequential + 65536) % BenchImage.Size;
        }
    }

    /// <summary>The floor: <c>pread</c> of the same random 4 KiB blocks, no block layer.</summary>
    [Benchmark(OperationsPerInvoke = Ops, Baseline = true)]
    public void PlainPread4K()
    {
        var span = _buffer4K.Span[..4096];
        foreach (long offset in _randomOffsets)
            RandomAccess.Read(_plain, span, offset);
    }
}
