using System.Diagnostics;
using BenchmarkDotNet.Attributes;
using Block.Drivers;
using Block.Drivers.File;
using Block.Drivers.Raw;
using Block.Graph;
using Block.Io;
using Block.Qapi;
using Block.Qcow2;
using Block.Qcow2.Driver;

namespace Block.Bench;

/// <summary>
/// qcow2 against raw on the same data and engine: 4 KiB random reads of a fully allocated image (metadata cached:
/// the read path takes no lock and allocates nothing), sequential 64 KiB reads, and allocating 4 KiB writes, one per
/// new cluster, into a fresh image.
/// </summary>
[MemoryDiagnoser]
public class Qcow2Benchmarks
{
    private const int Ops = 1000;
    private BlockGraph _graph = null!;
    private BlockBackend _raw = null!;
    private BlockBackend _qcow2 = null!;
    private AlignedBuffer _buffer4K = null!;
    private AlignedBuffer _buffer64K = null!;
    private long[] _randomOffsets = null!;
    private long _sequential;
    private string _qcow2Path = null!;
    private BlockGraph? _fresh;
    private BlockBackend? _freshBackend;

    /// <summary>The I/O engine under test.</summary>
    [Params(BlockdevAioOptions.Inline, BlockdevAioOptions.Threads, BlockdevAioOptions.IoUring)]
    public BlockdevAioOptions Engine { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        string rawPath = BenchImage.Ensure();
        _qcow2Path = BenchImage.EnsureQcow2();
        _graph = new BlockGraph(new BlockGraphOptions { Drivers = DriverRegistry.CreateDefault().AddQcow2() });
        _raw = _graph.OpenBackendAsync(new BlockdevOptionsRaw { File = new BlockdevOptionsFile { Filename = rawPath, Aio = Engine } },
            new BlockBackendOptions { Accounting = false }).AsTask().GetAwaiter().GetResult();
        _qcow2 = _graph.OpenBackendAsync(new BlockdevOptionsQcow2 { File = new BlockdevOptionsFile { Filename = _qcow2Path, Aio = Engine } },
            new BlockBackendOptions { Accounting = false }).AsTask().GetAwaiter().GetResult();
        _buffer4K = AlignedBuffer.Allocate(4096);
        _buffer64K = AlignedBuffer.Allocate(65536);
        var rng = new Random(7);
        _randomOffsets = Enumerable.Range(0, Ops).Select(_ => rng.NextInt64(BenchImage.Size / 4096) * 4096).ToArray();
        // Warm the page cache and the L2 cache.
        var warm = new IoVector(_buffer64K.Memory[..65536]);
        for (long o = 0; o < BenchImage.Size; o += 65536)
        {
            _raw.ReadAsync(o, warm).AsTask().GetAwaiter().GetResult();
            _qcow2.ReadAsync(o, warm).AsTask().GetAwaiter().GetResult();
        }
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _graph.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _buffer4K.Dispose();
        _buffer64K.Dispose();
    }

    /// <summary>The baseline: random 4 KiB reads of the raw file.</summary>
    [Benchmark(OperationsPerInvoke = Ops, Baseline = true)]
    public async Task RawRandomRead4K()
    {
        var buffer = new IoVector(_buffer4K.Memory[..4096]);
        foreach (long offset in _randomOffsets)
            await _raw.ReadAsync(offset, buffer);
    }

    /// <summary>The same reads of a fully allocated qcow2 image with the same content.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public async Task Qcow2RandomRead4K()
    {
        var buffer = new IoVector(_buffer4K.Memory[..4096]);
        foreach (long offset in _randomOffsets)
            await _qcow2.ReadAsync(offset, buffer);
    }

    /// <summary>Random 4 KiB overwrites of allocated clusters: the in-place path (no lock, no allocation).</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public async Task Qcow2RandomOverwrite4K()
    {
        var buffer = new IoVector(_buffer4K.Memory[..4096]);
        foreach (long offset in _randomOffsets)
            await _qcow2.WriteAsync(offset, buffer);
    }

    /// <summary>Sequential 64 KiB reads of the qcow2 image (one cluster each).</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public async Task Qcow2SequentialRead64K()
    {
        var buffer = new IoVector(_buffer64K.Memory[..65536]);
        for (int i = 0; i < Ops; i++)
        {
            await _qcow2.ReadAsync(_sequential, buffer);
            _sequential = (_sequential + 65536) % BenchImage.Size;
        }
    }

    [IterationSetup(Target = nameof(Qcow2AllocatingWrite4K))]
    public void FreshImage()
    {
        string path = Path.Combine(Path.GetTempPath(), "blk-bench-fresh.qcow2");
        File.Delete(path);
        Process.Start("qemu-img", ["create", "-q", "-f", "qcow2", path, "1G"])!.WaitForExit();
        _fresh = new BlockGraph(new BlockGraphOptions { Drivers = DriverRegistry.CreateDefault().AddQcow2() });
        _freshBackend = _fresh.OpenBackendAsync(new BlockdevOptionsQcow2 { File = new BlockdevOptionsFile { Filename = path, Aio = Engine } },
            new BlockBackendOptions { Accounting = false }).AsTask().GetAwaiter().GetResult();
    }

    [IterationCleanup(Target = nameof(Qcow2AllocatingWrite4K))]
    public void CloseFreshImage()
    {
        _fresh?.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _fresh = null;
    }

    /// <summary>4 KiB writes each into a new cluster: allocation, COW of the rest of the cluster, L2 update.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public async Task Qcow2AllocatingWrite4K()
    {
        var buffer = new IoVector(_buffer4K.Memory[..4096]);
        for (int i = 0; i < Ops; i++)
            await _freshBackend!.WriteAsync((long)i * 65536, buffer);
    }
}
