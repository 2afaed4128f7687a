using System.Diagnostics;
using Block.Graph;
using Block.Io;

namespace Block.Cli.Img;

/// <summary>
/// The request loop of <c>blk bench</c>: <c>depth</c> workers each keep one request in flight, taking the next
/// request number from a shared counter, until <c>count</c> have been issued.
/// </summary>
/// <remarks>
/// Each worker owns an aligned buffer and awaits its requests one after the other: with a synchronous engine the
/// whole run is a tight loop of <c>pread</c> calls through the block layer, with no allocation per request.
/// </remarks>
internal sealed class BenchRun
{
    private readonly BlockBackend _backend;
    private readonly bool _write;
    private readonly int _count;
    private readonly int _depth;
    private readonly int _bufferSize;
    private readonly long _step;
    private readonly long _start;
    private readonly long _imageSize;
    private readonly int _flushInterval;
    private readonly bool _drain;
    private readonly byte _pattern;
    private readonly object _flushLock = new();
    private long _next;
    private int _inFlight;
    private Task? _flushGate;

    public BenchRun(BlockBackend backend, bool write, int count, int depth, int bufferSize, long step, long start, int flushInterval, bool drain, byte pattern)
    {
        _backend = backend;
        _write = write;
        _count = count;
        _depth = depth;
        _bufferSize = bufferSize;
        _step = step;
        _start = start;
        _imageSize = backend.Length;
        _flushInterval = flushInterval;
        _drain = drain;
        _pattern = pattern;
    }

    public BlockException? Failure { get; private set; }

    /// <summary>When set, request k goes to a random request-aligned offset derived from this seed and k.</summary>
    public ulong? RandomSeed { get; init; }

    public async Task<TimeSpan> RunAsync()
    {
        var buffers = new AlignedBuffer[Math.Min(_depth, Math.Max(1, _count))];
        for (int i = 0; i < buffers.Length; i++)
        {
            buffers[i] = AlignedBuffer.Allocate(Math.Max(_bufferSize, 1));
            buffers[i].Span.Fill(_pattern);
        }
        try
        {
            var sw = Stopwatch.StartNew();
            var workers = new Task[buffers.Length];
            for (int i = 0; i < workers.Length; i++)
            {
                var memory = buffers[i].Memory[.._bufferSize];
                workers[i] = _depth == 1 ? WorkerAsync(memory) : Task.Run(() => WorkerAsync(memory));
            }
            await Task.WhenAll(workers);
            sw.Stop();
            return sw.Elapsed;
        }
        finally
        {
            foreach (var b in buffers)
                b.Dispose();
        }
    }

    private async Task WorkerAsync(Memory<byte> buffer)
    {
        var vector = new IoVector(buffer);
        while (Failure is null)
        {
            long k = Interlocked.Increment(ref _next) - 1;
            if (k >= _count)
                return;
            if (_flushInterval > 0 && k > 0 && (_count - k) % _flushInterval == 0)
                await FlushAsync();
            long offset = OffsetOf(k);
            Interlocked.Increment(ref _inFlight);
            try
            {
                if (_write)
                    await _backend.WriteAsync(offset, vector);
                else
                    await _backend.ReadAsync(offset, vector);
            }
            catch (BlockException e)
            {
                Failure ??= e;
                return;
            }
            finally
            {
                Interlocked.Decrement(ref _inFlight);
            }
        }
    }

    /// <summary>Request k goes to the start offset, then each one step further, wrapping at the end of the image.</summary>
    private long OffsetOf(long k)
    {
        if (RandomSeed is { } seed)
            return RandomOffsetOf(seed, k);
        if (k == 0 || _imageSize == 0)
            return _start;
        var wrapped = ((UInt128)(ulong)_start + (UInt128)(ulong)k * (ulong)_step) % (ulong)_imageSize;
        return (long)(ulong)wrapped;
    }

    /// <summary>
    /// A uniformly drawn request-aligned offset in <c>[start, image end − request size]</c>: a hash of the seed and
    /// <paramref name="k"/>, so the sequence does not depend on which worker issues which request.
    /// </summary>
    private long RandomOffsetOf(ulong seed, long k)
    {
        long slots = Math.Max(1, (_imageSize - _start) / Math.Max(1, _bufferSize));
        ulong hash = SplitMix64(seed * 0x9E3779B97F4A7C15UL + (ulong)k);
        ulong slot = Math.BigMul(hash, (ulong)slots, out _);
        return _start + (long)slot * _bufferSize;
    }

    private static ulong SplitMix64(ulong x)
    {
        x += 0x9E3779B97F4A7C15UL;
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBUL;
        return x ^ (x >> 31);
    }

    private Task FlushAsync()
    {
        lock (_flushLock)
        {
            if (_flushGate is { IsCompleted: false } existing)
                return existing;
            _flushGate = FlushCoreAsync();
            return _flushGate;
        }
    }

    private async Task FlushCoreAsync()
    {
        if (_drain)
        {
            while (Volatile.Read(ref _inFlight) > 0)
                await Task.Yield();
        }
        try
        {
            await _backend.FlushAsync();
        }
        catch (BlockException e)
        {
            Failure ??= e;
        }
    }
}
