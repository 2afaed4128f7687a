using BenchmarkDotNet.Attributes;
using Block.Drivers;
using Block.Graph;
using Block.Io;

namespace Block.Bench;

/// <summary>
/// The workload of the encrypted-image benchmarks: a 64 MiB image created with the secret <c>s0</c> and filled with
/// random data, then random 4 KiB reads, sequential 64 KiB reads and sequential 64 KiB in-place writes through a
/// backend (1000 per invocation). A subclass names the format and opens the backend.
/// </summary>
[MemoryDiagnoser]
public abstract class EncryptedImageBenchmarks
{
    private const int Ops = 1000;

    /// <summary>The image's virtual size.</summary>
    protected const long Size = 64L << 20;

    private BlockGraph _graph = null!;
    private BlockBackend _backend = null!;
    private AlignedBuffer _buffer4K = null!;
    private AlignedBuffer _buffer64K = null!;
    private long[] _randomOffsets = null!;
    private long _sequential;

    /// <summary>The file name (in the temporary directory) of the image.</summary>
    protected abstract string FileName { get; }

    /// <summary>Adds the image's format driver to <paramref name="registry"/>.</summary>
    protected abstract DriverRegistry AddDriver(DriverRegistry registry);

    /// <summary>Creates the encrypted image at <paramref name="path"/> with the secret <c>s0</c>.</summary>
    protected abstract ValueTask CreateAsync(BlockGraph graph, string path);

    /// <summary>Opens the image at <paramref name="path"/> as the backend under test, without accounting.</summary>
    protected abstract ValueTask<BlockBackend> OpenAsync(BlockGraph graph, string path);

    [GlobalSetup]
    public void Setup()
    {
        string path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), FileName);
        _graph = new BlockGraph(new BlockGraphOptions { Drivers = AddDriver(DriverRegistry.CreateDefault()) });
        _graph.Secrets.Add("s0", "benchmark", null, null);
        File.Delete(path);
        CreateAsync(_graph, path).AsTask().GetAwaiter().GetResult();
        _backend = OpenAsync(_graph, path).AsTask().GetAwaiter().GetResult();
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
