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
/// Reads and in-place writes of a fully allocated qcow2 image with LUKS encryption (backend → qcow2 → file, inline
/// engine, page cache, L2 cached): the cost of decryption on qcow2's lock-free read path, and proof that it allocates
/// nothing.
/// </summary>
[MemoryDiagnoser]
public class Qcow2LuksReadBenchmarks
{
    private const int Ops = 1000;
    private const long Size = 64L << 20;
    private BlockGraph _graph = null!;
    private BlockBackend _backend = null!;
    private AlignedBuffer _buffer4K = null!;
    private AlignedBuffer _buffer64K = null!;
    private long[] _randomOffsets = null!;
    private long _sequential;

    [GlobalSetup]
    public void Setup()
    {
        string path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "blk-bench-qcow2-luks.qcow2");
        _graph = new BlockGraph(new BlockGraphOptions { Drivers = DriverRegistry.CreateDefault().AddQcow2() });
        _graph.Secrets.Add("s0", "benchmark", null, null);
        File.Delete(path);
        _graph.CreateImageAsync("qcow2", path, new Dictionary<string, string>
        {
            ["size"] = Size.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["encrypt.format"] = "luks",
            ["encrypt.key-secret"] = "s0",
            ["encrypt.iter-time"] = "10",
        }).AsTask().GetAwaiter().GetResult();
        _backend = _graph.OpenBackendAsync(new BlockdevOptionsQcow2
        {
            File = new BlockdevOptionsFile { Filename = path, Aio = BlockdevAioOptions.Inline },
            Encrypt = new BlockdevQcow2Encryption { KeySecret = "s0" },
        }, new BlockBackendOptions { Accounting = false }).AsTask().GetAwaiter().GetResult();
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

    /// <summary>Sequential 64 KiB in-place writes, encrypted into a pooled bounce buffer.</summary>
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
