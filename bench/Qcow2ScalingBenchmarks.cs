using BenchmarkDotNet.Attributes;
using Block.Drivers;
using Block.Drivers.File;
using Block.Graph;
using Block.Io;
using Block.Qapi;
using Block.Qcow2;
using Block.Qcow2.Driver;

namespace Block.Bench;

/// <summary>
/// Random 4 KiB reads of a fully allocated qcow2 image (metadata cached) from one and from two submitting threads,
/// the same total number of reads either way: the mean time of <c>Threads=1</c> over that of <c>Threads=2</c> is
/// the speed-up. The cached read path takes no lock, so two threads should approach twice one thread's rate.
/// </summary>
[MemoryDiagnoser]
public class Qcow2ScalingBenchmarks
{
    private const int Ops = 20000;
    private BlockGraph _graph = null!;
    private BlockBackend _qcow2 = null!;
    private AlignedBuffer[] _buffers = null!;
    private long[] _randomOffsets = null!;

    /// <summary>Submitting threads, each doing its share of the reads synchronously (inline engine).</summary>
    [Params(1, 2)]
    public int Threads { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        string path = BenchImage.EnsureQcow2();
        _graph = new BlockGraph(new BlockGraphOptions { Drivers = DriverRegistry.CreateDefault().AddQcow2() });
        _qcow2 = _graph.OpenBackendAsync(new BlockdevOptionsQcow2 { File = new BlockdevOptionsFile { Filename = path, Aio = BlockdevAioOptions.Inline } },
            new BlockBackendOptions { Accounting = false }).AsTask().GetAwaiter().GetResult();
        _buffers = [AlignedBuffer.Allocate(65536), AlignedBuffer.Allocate(65536)];
        var rng = new Random(7);
        _randomOffsets = [.. Enumerable.Range(0, Ops).Select(_ => rng.NextInt64(BenchImage.Size / 4096) * 4096)];
        var warm = new IoVector(_buffers[0].Memory[..65536]);
        for (long o = 0; o < BenchImage.Size; o += 65536)
            _qcow2.ReadAsync(o, warm).AsTask().GetAwaiter().GetResult();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _graph.DisposeAsync().AsTask().GetAwaiter().GetResult();
        foreach (var b in _buffers)
            b.Dispose();
    }

    /// <summary>All the reads, split evenly over <see cref="Threads"/> threads.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public void RandomRead4K()
    {
        if (Threads == 1)
        {
            ReadShare(0, 1);
            return;
        }
        var other = new Thread(() => ReadShare(1, 2));
        other.Start();
        ReadShare(0, 2);
        other.Join();
    }

    private void ReadShare(int index, int of)
    {
        var buffer = new IoVector(_buffers[index].Memory[..4096]);
        for (int i = index; i < _randomOffsets.Length; i += of)
        {
            var task = _qcow2.ReadAsync(_randomOffsets[i], buffer);
            if (!task.IsCompletedSuccessfully)
                task.AsTask().GetAwaiter().GetResult();
        }
    }
}
