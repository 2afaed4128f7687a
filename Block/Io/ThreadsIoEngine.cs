using System.Collections.Concurrent;
using System.Threading.Tasks.Sources;

namespace Block.Io;

/// <summary>
/// QEMU's <c>aio=threads</c>: blocking positional I/O on a bounded pool of dedicated threads, so that many
/// requests can be in flight while the caller goes on.
/// </summary>
/// <remarks>
/// <para>The .NET thread pool is not used: a queue depth of 64 would park 64 of its threads in <c>pread</c> and
/// starve everything else in the process (the BCL's own <c>RandomAccess.ReadAsync</c> does exactly that on Unix).
/// Workers are started on demand up to <see cref="MaxWorkers"/> (64 by default, QEMU's pool size) and leave after
/// <see cref="IdleTimeout"/> without work.</para>
/// <para>Per-request state lives in pooled <see cref="IValueTaskSource"/> objects: a request allocates nothing. The
/// awaiting code continues on the worker thread that completed the call (no hop through another pool), so a
/// continuation must not block; the block layer's own code never does.</para>
/// <para>A read first tries the page cache on the caller's thread (<c>preadv2</c> with <c>RWF_NOWAIT</c>, which
/// fails rather than wait for the disk) and goes to a worker only when the data is not all cached: handing a cached
/// 4 KiB read to a worker and back costs 5–10 µs against 2 µs for the read itself, and made <c>blk nbd</c> serve
/// random 4 KiB reads slower than qemu-nbd (0.7–0.8×; see bench/README.md). After a run of misses (an
/// <c>O_DIRECT</c> file, a cold image) it tries only one read in 256, so uncached reads pay nothing measurable.</para>
/// </remarks>
public sealed class ThreadsIoEngine : IIoEngine, IDisposable
{
    private readonly ConcurrentQueue<Operation> _pending = new();
    private readonly ConcurrentQueue<Operation> _free = new();
    private readonly SemaphoreSlim _signal = new(0);
    private int _workers;
    private int _idleWorkers;
    private int _freeCount;
    private volatile bool _disposed;
    private int _cacheMisses;
    private int _cacheProbe;
    private volatile bool _noWaitUnsupported;

    /// <summary>Creates a pool of at most <paramref name="maxWorkers"/> threads.</summary>
    public ThreadsIoEngine(int maxWorkers = 64, TimeSpan? idleTimeout = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(maxWorkers, 1);
        MaxWorkers = maxWorkers;
        IdleTimeout = idleTimeout ?? TimeSpan.FromSeconds(10);
    }

    /// <inheritdoc />
    public string Name => "threads";

    /// <summary>The most worker threads the engine runs at once.</summary>
    public int MaxWorkers { get; }

    /// <summary>How long an idle worker waits for work before it exits.</summary>
    public TimeSpan IdleTimeout { get; }

    /// <summary>Worker threads alive now.</summary>
    public int WorkerCount => Volatile.Read(ref _workers);

    /// <inheritdoc />
    public ValueTask<int> ReadAsync(int fd, IoVector buffers, long offset)
    {
        if (buffers.IsSingleSegment && TryReadCached(fd, buffers.FirstSegment.Span, offset))
            return new ValueTask<int>(buffers.Length);
        return ReadDirectAsync(fd, buffers, offset);
    }

    /// <inheritdoc />
    public ValueTask<int> ReadDirectAsync(int fd, IoVector buffers, long offset)
    {
        var op = Rent();
        op.Opcode = Opcode.Read;
        op.Fd = fd;
        op.Buffers = buffers;
        op.Offset = offset;
        Submit(op);
        return new ValueTask<int>(op, op.Version);
    }

    /// <inheritdoc />
    public ValueTask WriteAsync(int fd, IoVector buffers, long offset)
    {
        var op = Rent();
        op.Opcode = Opcode.Write;
        op.Fd = fd;
        op.Buffers = buffers;
        op.Offset = offset;
        Submit(op);
        return new ValueTask(op, op.Version);
    }

    /// <inheritdoc />
    public ValueTask FlushAsync(int fd, bool dataOnly)
    {
        var op = Rent();
        op.Opcode = dataOnly ? Opcode.DataSync : Opcode.Sync;
        op.Fd = fd;
        Submit(op);
        return new ValueTask(op, op.Version);
    }

    /// <inheritdoc />
    public ValueTask StartWritebackAsync(int fd, long offset, long length)
    {
        var op = Rent();
        op.Opcode = Opcode.Writeback;
        op.Fd = fd;
        op.Offset = offset;
        op.Length = length;
        Submit(op);
        return new ValueTask(op, op.Version);
    }

    /// <inheritdoc />
    public ValueTask FallocateAsync(int fd, int mode, long offset, long length)
    {
        var op = Rent();
        op.Opcode = Opcode.Fallocate;
        op.Fd = fd;
        op.Mode = mode;
        op.Offset = offset;
        op.Length = length;
        Submit(op);
        return new ValueTask(op, op.Version);
    }

    /// <summary>Reads <paramref name="buffer"/> whole from the page cache on this thread; false to go to a worker.</summary>
    private bool TryReadCached(int fd, Span<byte> buffer, long offset)
    {
        if (_noWaitUnsupported || buffer.IsEmpty)
            return false;
        if (Volatile.Read(ref _cacheMisses) >= 8 && (Interlocked.Increment(ref _cacheProbe) & 255) != 0)
            return false;
        int n = PositionalIo.TryReadCached(fd, buffer, offset);
        if (n == buffer.Length)
        {
            if (Volatile.Read(ref _cacheMisses) != 0)
                Volatile.Write(ref _cacheMisses, 0);
            return true;
        }
        if (n == -2)
            _noWaitUnsupported = true;
        else if (Volatile.Read(ref _cacheMisses) < 8)
            Interlocked.Increment(ref _cacheMisses);
        return false;
    }

    /// <summary>Stops accepting work and lets the workers exit once the queue is empty.</summary>
    public void Dispose()
    {
        _disposed = true;
        _signal.Release(Math.Max(1, Volatile.Read(ref _workers)));
    }

    private Operation Rent()
    {
        if (_disposed)
            ThrowHelper.ThrowObjectDisposed(nameof(ThreadsIoEngine));
        if (_free.TryDequeue(out var op))
        {
            Interlocked.Decrement(ref _freeCount);
            return op;
        }
        return new Operation(this);
    }

    private void Return(Operation op)
    {
        op.Buffers = default;
        if (Interlocked.Increment(ref _freeCount) <= 1024)
        {
            _free.Enqueue(op);
            return;
        }
        Interlocked.Decrement(ref _freeCount);
    }

    private void Submit(Operation op)
    {
        _pending.Enqueue(op);
        if (Volatile.Read(ref _idleWorkers) == 0)
            TryStartWorker();
        _signal.Release();
    }

    private void TryStartWorker()
    {
        while (true)
        {
            int n = Volatile.Read(ref _workers);
            if (n >= MaxWorkers)
                return;
            if (Interlocked.CompareExchange(ref _workers, n + 1, n) == n)
                break;
        }
        var thread = new Thread(WorkerLoop) { IsBackground = true, Name = "block-io" };
        thread.UnsafeStart();
    }

    private void WorkerLoop()
    {
        while (true)
        {
            Interlocked.Increment(ref _idleWorkers);
            bool signalled = _signal.Wait(IdleTimeout);
            Interlocked.Decrement(ref _idleWorkers);
            if (_pending.TryDequeue(out var op))
            {
                op.Execute();
                continue;
            }
            if (!signalled || _disposed)
            {
                Interlocked.Decrement(ref _workers);
                // Work queued between the failed dequeue and the decrement must not be stranded.
                if (!_pending.IsEmpty && !_disposed)
                    TryStartWorker();
                return;
            }
        }
    }

    private enum Opcode : byte
    {
        Read,
        Write,
        Sync,
        DataSync,
        Fallocate,
        Writeback,
    }

    private sealed class Operation : IValueTaskSource<int>, IValueTaskSource
    {
        private readonly ThreadsIoEngine _engine;
        private ManualResetValueTaskSourceCore<int> _core;

        public Operation(ThreadsIoEngine engine)
        {
            _engine = engine;
            _core.RunContinuationsAsynchronously = false;
        }

        public Opcode Opcode;
        public int Fd;
        public IoVector Buffers;
        public long Offset;
        public long Length;
        public int Mode;

        public short Version => _core.Version;

        public void Execute()
        {
            int result = 0;
            try
            {
                switch (Opcode)
                {
                    case Opcode.Read:
                        result = PositionalIo.Read(Fd, Buffers, Offset);
                        break;
                    case Opcode.Write:
                        PositionalIo.Write(Fd, Buffers, Offset);
                        break;
                    case Opcode.Sync:
                    case Opcode.DataSync:
                        PositionalIo.Flush(Fd, Opcode == Opcode.DataSync);
                        break;
                    case Opcode.Fallocate:
                        PositionalIo.Fallocate(Fd, Mode, Offset, Length);
                        break;
                    case Opcode.Writeback:
                        PositionalIo.StartWriteback(Fd, Offset, Length);
                        break;
                }
            }
            catch (Exception e)
            {
                _core.SetException(e);
                return;
            }
            _core.SetResult(result);
        }

        public int GetResult(short token)
        {
            try
            {
                return _core.GetResult(token);
            }
            finally
            {
                _core.Reset();
                _engine.Return(this);
            }
        }

        void IValueTaskSource.GetResult(short token) => GetResult(token);

        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);
    }
}
