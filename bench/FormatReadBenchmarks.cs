using BenchmarkDotNet.Attributes;
using Block.Graph;
using Block.Io;
using Block.Qapi;
using Microsoft.Win32.SafeHandles;

namespace Block.Bench;

/// <summary>
/// Reads of a fully allocated 1 GiB image through the graph (backend → format → file, inline engine) against plain
/// <c>pread</c> of the same file: random 4 KiB reads at QD1 and sequential 64 KiB reads, and random 4 KiB overwrites
/// of allocated data (the in-place write path, no allocation in the format). One class per format derives from this
/// and names its image.
/// </summary>
[MemoryDiagnoser]
public abstract class FormatReadBenchmarks
{
    private const int Ops = 1000;
    private BlockGraph _graph = null!;
    private BlockBackend _backend = null!;
    private SafeFileHandle _plain = null!;
    private AlignedBuffer _buffer4K = null!;
    private AlignedBuffer _buffer64K = null!;
    private long[] _randomOffsets = null!;
    private long[] _randomFileOffsets = null!;
    private long _sequential;
    private long _sequentialFile;
    private long _fileLength;

    /// <summary>The image read.</summary>
    private protected abstract FormatBenchImage Image { get; }

    [GlobalSetup]
    public void Setup()
    {
        string path = Image.Ensure();
        _graph = new BlockGraph(new BlockGraphOptions { Drivers = Image.Drivers() });
        _backend = _graph.OpenImageAsync(path, new ImageOpenOptions
        {
            Format = Image.Format,
            Aio = BlockdevAioOptions.Inline,
            Backend = new BlockBackendOptions { Accounting = false },
        }).AsTask().GetAwaiter().GetResult();
        _plain = File.OpenHandle(path);
        _fileLength = RandomAccess.GetLength(_plain);
        _buffer4K = AlignedBuffer.Allocate(4096);
        _buffer64K = AlignedBuffer.Allocate(65536);
        var rng = new Random(7);
        _randomOffsets = Enumerable.Range(0, Ops).Select(_ => rng.NextInt64(FormatBenchImage.Size / 4096) * 4096).ToArray();
        _randomFileOffsets = Enumerable.Range(0, Ops).Select(_ => rng.NextInt64(_fileLength / 4096) * 4096).ToArray();
        // Warm the page cache and the format's tables.
        var warm = new byte[1 << 20];
        for (long o = 0; o < _fileLength; o += warm.Length)
            RandomAccess.Read(_plain, warm, o);
        for (long o = 0; o < FormatBenchImage.Size; o += 32 << 20)
            _backend.ReadAsync(o, _buffer4K.Memory[..4096]).AsTask().GetAwaiter().GetResult();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _graph.DisposeAsync().AsTask().GetAwaiter().GetResult();
        _plain.Dispose();
        _buffer4K.Dispose();
        _buffer64K.Dispose();
    }

    /// <summary>Random 4 KiB reads of the disk, one at a time.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public async Task RandomRead4K()
    {
        var buffer = new IoVector(_buffer4K.Memory[..4096]);
        foreach (long offset in _randomOffsets)
            await _backend.ReadAsync(offset, buffer);
    }

    /// <summary>Random 4 KiB overwrites of allocated data, one at a time (the bytes are the last read's).</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public async Task RandomWrite4K()
    {
        var buffer = new IoVector(_buffer4K.Memory[..4096]);
        foreach (long offset in _randomOffsets)
            await _backend.WriteAsync(offset, buffer);
    }

    /// <summary>The floor: <c>pread</c> of random 4 KiB blocks of the same file, no block layer.</summary>
    [Benchmark(OperationsPerInvoke = Ops, Baseline = true)]
    public void PlainPread4K()
    {
        var span = _buffer4K.Span[..4096];
        foreach (long offset in _randomFileOffsets)
            RandomAccess.Read(_plain, span, offset);
    }

    /// <summary>Sequential 64 KiB reads of the disk.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public async Task SequentialRead64K()
    {
        var buffer = new IoVector(_buffer64K.Memory[..65536]);
        for (int i = 0; i < Ops; i++)
        {
            await _backend.ReadAsync(_sequential, buffer);
            _sequential = (_sequential + 65536) % FormatBenchImage.Size;
        }
    }

    /// <summary>The floor: sequential 64 KiB <c>pread</c>s of the same file.</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public void PlainPread64K()
    {
        var span = _buffer64K.Span[..65536];
        for (int i = 0; i < Ops; i++)
        {
            RandomAccess.Read(_plain, span, _sequentialFile);
            _sequentialFile = (_sequentialFile + 65536) % (_fileLength - 65536);
        }
    }
}
