using BenchmarkDotNet.Attributes;
using Block.Crypto;
using Block.Crypto.Driver;
using Block.Drivers;
using Block.Drivers.File;
using Block.Graph;
using Block.Io;
using Block.Qapi;

namespace Block.Bench;

/// <summary>
/// Reads and writes through a LUKS image (backend → luks → file, per engine, page cache): the cost of decryption
/// and encryption on the request path, and proof that a LUKS read allocates nothing.
/// </summary>
[MemoryDiagnoser]
public class LuksReadBenchmarks
{
    private const int Ops = 1000;
    private const long Size = 64L << 20;
    private BlockGraph _graph = null!;
    private BlockBackend _backend = null!;
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
        string path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "blk-bench-luks.img");
        _graph = new BlockGraph(new BlockGraphOptions { Drivers = DriverRegistry.CreateDefault().AddLuks() });
        _graph.Secrets.Add("s0", "benchmark", null, null);
        File.Delete(path);
        _graph.CreateImageAsync("luks", path, new Dictionary<string, string>
        {
            ["size"] = Size.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["key-secret"] = "s0",
            ["iter-time"] = "10",
        }).AsTask().GetAwaiter().GetResult();
        var node = _graph.AddNodeAsync(new BlockdevOptionsLuks
        {
            NodeName = "bench",
            KeySecret = "s0",
            File = new BlockdevOptionsFile { Filename = path, Aio = Engine },
        }).AsTask().GetAwaiter().GetResult();
        _backend = _graph.CreateBackend(node, new BlockBackendOptions { Accounting = false });
        _buffer4K = AlignedBuffer.Allocate(4096);
        _buffer64K = AlignedBuffer.Allocate(65536);
        new Random(3).NextBytes(_buffer64K.Span);
        for (long o = 0; o < Size; o += 65536)
            _backend.WriteAsync(o, _buffer64K.Memory).AsTask().GetAwaiter().GetResult();
        var rng = new Random(7);
        _randomOffsets = [.. Enumerable.Range(0, Ops).Select(_ => rng.NextInt64(Size / 4096) * 4096)];
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _graph.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _buffer4K.Dispose();
        _buffer64K.Dispose();
    }

    /// <summary>Random 4 KiB reads, decrypted in the caller's buffer.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public async Task RandomRead4K()
    {
        var buffer = new IoVector(_buffer4K.Memory[..4096]);
        foreach (long offset in _randomOffsets)
            await _backend.ReadAsync(offset, buffer);
    }

    /// <summary>Sequential 64 KiB reads.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public async Task SequentialRead64K()
    {
        var buffer = new IoVector(_buffer64K.Memory[..65536]);
        for (int i = 0; i < Ops; i++)
        {
            await _backend.ReadAsync(_sequential, buffer);
            _sequential = (_sequential + 65536) % Size;
        }
    }

    /// <summary>Sequential 64 KiB writes, encrypted into a pooled bounce buffer.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public async Task SequentialWrite64K()
    {
        var buffer = new IoVector(_buffer64K.Memory[..65536]);
        for (int i = 0; i < Ops; i++)
        {
            await _backend.WriteAsync(_sequential, buffer);
            _sequential = (_sequential + 65536) % Size;
        }
    }
}
