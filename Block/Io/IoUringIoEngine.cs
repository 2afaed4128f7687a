using System.Buffers;
using System.Collections.Concurrent;
using System.Numerics;
using System.Runtime.CompilerServices;
using System.Threading.Tasks.Sources;
using Block.Interop;

namespace Block.Io;

/// <summary>
/// QEMU's <c>aio=io_uring</c> (and Block's <c>aio=native</c>): requests go to the kernel through one io_uring, set
/// up with raw system calls, and complete on one dedicated completion thread.
/// </summary>
/// <remarks>
/// <para><b>Submission.</b> Any thread may submit: it fills an SQE under a short lock and, unless it is the
/// completion thread, calls <c>io_uring_enter</c> itself, so a page-cached buffered read is executed right there,
/// on the submitter's core. Requests submitted by the completion thread (the continuations of earlier requests, the
/// steady state of any queue depth) are only queued; the thread submits them all with one <c>io_uring_enter</c>
/// that also waits for the next completions. At queue depth 16 that is one system call per 16 requests.</para>
/// <para><b>Completion.</b> The completion thread takes each CQE and completes the request's pooled
/// <see cref="IValueTaskSource"/> in place: the awaiting code continues on that thread, with no hop through the
/// thread pool (except in one narrow race: a CQE that lands after the awaiter found the request pending but before it
/// registered its continuation; <see cref="ManualResetValueTaskSourceCore{TResult}"/> then queues that continuation to
/// the pool, seen once in 200 reads on an overloaded machine). A request whose CQE arrives while its submitter (not the completion thread) is still inside
/// <c>io_uring_enter</c> — a page-cached read always does — is finished by the submitter itself, which then returns a
/// completed <see cref="ValueTask"/>: a synchronous caller at queue depth 1 never changes thread. As with
/// <see cref="ThreadsIoEngine"/>, a continuation must not block; one that waited synchronously for another request
/// of this engine on the completion thread would wait forever, since it holds the thread that completes them.</para>
/// <para><b>Bounds.</b> At most <c>CQ entries − 1</c> requests are in the kernel (the CQ can never overflow, one CQE
/// is kept for the wake-up of <see cref="Dispose"/>); more wait in a queue in submission order. A request allocates
/// nothing: its state lives in a pooled operation that pins the caller's segments only while the kernel holds them.</para>
/// <para><b>Retries.</b> Short reads continue until the end of the file, short writes until done, and EINTR, EAGAIN
/// and ECANCELED (the kernel cancels the pending work of a submitting thread that exits) are resubmitted.</para>
/// <para>Registered buffers are not used: the caller's memory changes from request to request (guest memory, pooled
/// bounce buffers), and registering per request costs more than the page pinning it would save.</para>
/// </remarks>
public sealed class IoUringIoEngine : IIoEngine, IDisposable
{
    private const ulong WakeUserData = ulong.MaxValue;
    private const int MaxPooled = 1024;

    [ThreadStatic]
    private static IoUringIoEngine? t_completing;

    private readonly IoUringRing _ring;
    private readonly object _submitLock = new();
    private readonly Operation?[] _slots;
    private readonly int[] _freeSlots;
    private readonly Queue<Operation> _backlog = new();
    private readonly ConcurrentQueue<Operation> _pool = new();
    private readonly Thread _thread;
    private readonly bool _plainReadWrite;
    private int _freeSlotCount;
    private int _pooled;
    /// <summary>Threads between publishing SQEs and leaving io_uring_enter; the ring is not closed under them. Interlocked only: raised under the lock, lowered outside it.</summary>
    private int _foreignEnters;
    private volatile bool _disposed;
    private bool _closed;

    /// <summary>Sets up a ring of <paramref name="entries"/> submission slots and starts its completion thread.</summary>
    /// <exception cref="BlockException">
    /// The kernel refused io_uring: the errno of the refused call (ENOSYS on kernels without it, EPERM when a
    /// seccomp filter or <c>kernel.io_uring_disabled</c> forbids it, ENOTSUP when an opcode the engine needs is
    /// missing).
    /// </exception>
    public IoUringIoEngine(int entries = 256)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(entries, 2);
        _ring = IoUringRing.Create((uint)entries);
        _plainReadWrite = _ring.Supports(IoUring.OpRead) && _ring.Supports(IoUring.OpWrite);
        int capacity = (int)_ring.CqEntries - 1;
        _slots = new Operation?[capacity];
        _freeSlots = new int[capacity];
        for (int i = 0; i < capacity; i++)
            _freeSlots[i] = capacity - 1 - i;
        _freeSlotCount = capacity;
        _thread = new Thread(CompletionLoop) { IsBackground = true, Name = "block-io_uring" };
        _thread.UnsafeStart();
    }

    /// <inheritdoc />
    public string Name => "io_uring";

    /// <summary>The most requests the kernel holds at once; further ones queue in the engine.</summary>
    public int MaxInFlight => _slots.Length;

    /// <inheritdoc />
    public ValueTask<int> ReadAsync(int fd, IoVector buffers, long offset)
    {
        if (buffers.Length == 0)
            return new ValueTask<int>(0);
        var op = Rent(Opcode.Read, fd);
        op.Buffers = buffers;
        op.Offset = offset;
        Submit(op);
        return new ValueTask<int>(op, op.Version);
    }

    /// <inheritdoc />
    public ValueTask WriteAsync(int fd, IoVector buffers, long offset)
    {
        if (buffers.Length == 0)
            return default;
        var op = Rent(Opcode.Write, fd);
        op.Buffers = buffers;
        op.Offset = offset;
        Submit(op);
        return new ValueTask(op, op.Version);
    }

    /// <inheritdoc />
    public ValueTask FlushAsync(int fd, bool dataOnly)
    {
        var op = Rent(dataOnly ? Opcode.DataSync : Opcode.Sync, fd);
        Submit(op);
        return new ValueTask(op, op.Version);
    }

    /// <inheritdoc />
    /// <remarks>Through the ring where the kernel has <c>IORING_OP_SYNC_FILE_RANGE</c> (5.2 and later), else on the caller's thread.</remarks>
    public ValueTask StartWritebackAsync(int fd, long offset, long length)
    {
        if (!_ring.Supports(IoUring.OpSyncFileRange))
        {
            try
            {
                PositionalIo.StartWriteback(fd, offset, length);
                return default;
            }
            catch (BlockException e)
            {
                return ValueTask.FromException(e);
            }
        }
        var op = Rent(Opcode.Writeback, fd);
        op.Offset = offset;
        op.Length = length;
        Submit(op);
        return new ValueTask(op, op.Version);
    }

    /// <inheritdoc />
    public ValueTask FallocateAsync(int fd, int mode, long offset, long length)
    {
        var op = Rent(Opcode.Fallocate, fd);
        op.Mode = mode;
        op.Offset = offset;
        op.Length = length;
        Submit(op);
        return new ValueTask(op, op.Version);
    }

    /// <summary>
    /// Stops accepting requests, lets those already accepted finish, then closes the ring. Waits for that unless
    /// called on the completion thread itself (from a continuation), which then closes the ring when it is idle.
    /// </summary>
    public void Dispose()
    {
        bool foreign = t_completing != this;
        bool enter;
        lock (_submitLock)
        {
            if (_disposed)
                return;
            _disposed = true;
            // On the completion thread the loop sees the flag when the current batch ends; elsewhere wake it.
            enter = foreign && !_closed && QueueWake();
            if (enter)
                Interlocked.Increment(ref _foreignEnters);
        }
        if (!foreign)
            return;
        if (enter)
            EnterForeign();
        _thread.Join();
    }

    private Operation Rent(Opcode opcode, int fd)
    {
        if (_disposed)
            ThrowHelper.ThrowObjectDisposed(nameof(IoUringIoEngine));
        if (_pool.TryDequeue(out var op))
            Interlocked.Decrement(ref _pooled);
        else
            op = new Operation(this);
        op.Kind = opcode;
        op.Fd = fd;
        op.Done = 0;
        return op;
    }

    private void Return(Operation op)
    {
        op.Buffers = default;
        if (Interlocked.Increment(ref _pooled) <= MaxPooled)
        {
            _pool.Enqueue(op);
            return;
        }
        Interlocked.Decrement(ref _pooled);
    }

    /// <summary>Queues <paramref name="op"/> (its next step) for the kernel and, off the completion thread, submits it.</summary>
    private void Submit(Operation op)
    {
        op.PinStep();
        bool foreign = t_completing != this;
        lock (_submitLock)
        {
            if (_closed)
            {
                op.Unpin();
                op.Fail(new ObjectDisposedException(nameof(IoUringIoEngine)));
                return;
            }
            if (_backlog.Count > 0 || !TryQueue(op))
            {
                // The kernel holds MaxInFlight requests or the SQ is full: completions will make room, and the
                // completion thread moves the backlog into the ring after every batch.
                op.State = Operation.Queued;
                _backlog.Enqueue(op);
                return;
            }
            op.State = foreign ? Operation.Submitting : Operation.Queued;
            _ring.Publish();
            if (foreign)
                Interlocked.Increment(ref _foreignEnters);
        }
        if (!foreign)
            return;
        EnterForeign();
        // A page-cached read is done before io_uring_enter returns, and the completion thread may have taken its
        // CQE already. It then left the result here: finish the request on this thread, so that the caller gets a
        // completed ValueTask and continues without any thread switch.
        if (Interlocked.CompareExchange(ref op.State, Operation.Queued, Operation.Submitting) == Operation.CompletedEarly)
            op.OnCompletion(op.EarlyResult);
    }

    /// <summary>Puts <paramref name="op"/> into a slot and an SQE; false when either is lacking. Under the lock.</summary>
    private unsafe bool TryQueue(Operation op)
    {
        if (_freeSlotCount == 0)
            return false;
        var sqe = _ring.TryGetSqe();
        if (sqe == null)
            return false;
        int slot = _freeSlots[--_freeSlotCount];
        _slots[slot] = op;
        op.Fill(sqe);
        sqe->UserData = (ulong)slot;
        return true;
    }

    /// <summary>Queues a NOP that wakes the completion thread; false when the SQ is full (it is awake then anyway).</summary>
    private unsafe bool QueueWake()
    {
        var sqe = _ring.TryGetSqe();
        if (sqe == null)
            return false;
        sqe->Opcode = IoUring.OpNop;
        sqe->UserData = WakeUserData;
        _ring.Publish();
        return true;
    }

    /// <summary>Submits what is in the SQ from a thread other than the completion thread.</summary>
    private void EnterForeign()
    {
        try
        {
            var spin = default(SpinWait);
            while (true)
            {
                uint pending = _ring.Unsubmitted;
                if (pending == 0)
                    return;
                int r = _ring.Enter(pending, 0, 0);
                if (r >= 0 || r == -(int)Errno.EINTR)
                {
                    if (r >= 0)
                        return;
                    continue;
                }
                if (r != -(int)Errno.EAGAIN && r != -(int)Errno.EBUSY)
                {
                    // The SQEs stay in the ring; the completion thread's next enter submits them.
                    return;
                }
                spin.SpinOnce();
            }
        }
        finally
        {
            Interlocked.Decrement(ref _foreignEnters);
        }
    }

    private void CompletionLoop()
    {
        t_completing = this;
        try
        {
            while (true)
            {
                lock (_submitLock)
                {
                    if (_disposed && _freeSlotCount == _slots.Length && _backlog.Count == 0)
                    {
                        _closed = true;
                        break;
                    }
                }
                int r = _ring.Enter(_ring.Unsubmitted, 1, IoUring.EnterGetEvents);
                if (r < 0 && r != -(int)Errno.EINTR && r != -(int)Errno.EAGAIN && r != -(int)Errno.EBUSY)
                {
                    // Not expected from a healthy ring; back off rather than spin, and keep reaping what arrives.
                    Thread.Sleep(1);
                }
                Reap();
                DrainBacklog();
            }
        }
        finally
        {
            var spin = default(SpinWait);
            while (Volatile.Read(ref _foreignEnters) != 0)
                spin.SpinOnce();
            _ring.Dispose();
            t_completing = null;
        }
    }

    private void Reap()
    {
        while (_ring.TryTakeCqe(out ulong userData, out int result))
        {
            if (userData == WakeUserData)
                continue;
            int slot = (int)userData;
            Operation op;
            lock (_submitLock)
            {
                op = _slots[slot]!;
                _slots[slot] = null;
                _freeSlots[_freeSlotCount++] = slot;
            }
            if (Volatile.Read(ref op.State) == Operation.Submitting)
            {
                op.EarlyResult = result;
                if (Interlocked.CompareExchange(ref op.State, Operation.CompletedEarly, Operation.Submitting) == Operation.Submitting)
                    continue;
            }
            op.OnCompletion(result);
        }
    }

    private void DrainBacklog()
    {
        lock (_submitLock)
        {
            if (_backlog.Count == 0)
                return;
            while (_backlog.Count > 0 && TryQueue(_backlog.Peek()))
                _backlog.Dequeue();
            _ring.Publish();
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

    private sealed unsafe class Operation : IValueTaskSource<int>, IValueTaskSource
    {
        private const int InlineSegments = 16;

        private readonly IoUringIoEngine _engine;
        private ManualResetValueTaskSourceCore<int> _core;
        private LibC.IoVec[] _iovecs = GC.AllocateArray<LibC.IoVec>(InlineSegments, pinned: true);
        private MemoryHandle[] _pins = new MemoryHandle[InlineSegments];
        private int _pinCount;
        private byte _sqeOpcode;
        private ulong _sqeAddress;
        private uint _sqeLength;

        public Operation(IoUringIoEngine engine)
        {
            _engine = engine;
            _core.RunContinuationsAsynchronously = false;
        }

        /// <summary>Queued by the completion thread or past its submitter's <c>io_uring_enter</c>.</summary>
        public const int Queued = 0;

        /// <summary>Its submitter, not the completion thread, is inside <c>io_uring_enter</c> for it.</summary>
        public const int Submitting = 1;

        /// <summary>The CQE arrived while <see cref="Submitting"/>: the submitter finishes it with <see cref="EarlyResult"/>.</summary>
        public const int CompletedEarly = 2;

        public int State;
        public int EarlyResult;
        public Opcode Kind;
        public int Fd;
        public IoVector Buffers;
        public long Offset;
        public long Length;
        public int Mode;
        public int Done;

        public short Version => _core.Version;

        /// <summary>Pins the part of the buffers still to transfer and works out the SQE for it.</summary>
        public void PinStep()
        {
            if (Kind is not (Opcode.Read or Opcode.Write))
                return;
            var rest = Buffers.Slice(Done);
            if (rest.IsSingleSegment)
            {
                var pin = rest.FirstSegment.Pin();
                _pins[0] = pin;
                _pinCount = 1;
                if (_engine._plainReadWrite)
                {
                    _sqeOpcode = Kind == Opcode.Read ? IoUring.OpRead : IoUring.OpWrite;
                    _sqeAddress = (ulong)pin.Pointer;
                    _sqeLength = (uint)rest.Length;
                    return;
                }
                _iovecs[0].Base = pin.Pointer;
                _iovecs[0].Length = (nuint)rest.Length;
            }
            else
            {
                int segments = Math.Min(rest.SegmentCount, PositionalIo.MaxIov);
                if (segments > _iovecs.Length)
                {
                    int size = Math.Min(PositionalIo.MaxIov, (int)BitOperations.RoundUpToPowerOf2((uint)segments));
                    _iovecs = GC.AllocateArray<LibC.IoVec>(size, pinned: true);
                    _pins = new MemoryHandle[size];
                }
                _pinCount = rest.Pin(_iovecs, _pins);
            }
            _sqeOpcode = Kind == Opcode.Read ? IoUring.OpReadv : IoUring.OpWritev;
            _sqeAddress = (ulong)Unsafe.AsPointer(ref _iovecs[0]);
            _sqeLength = (uint)_pinCount;
        }

        public void Unpin()
        {
            for (int i = 0; i < _pinCount; i++)
                _pins[i].Dispose();
            _pinCount = 0;
        }

        public void Fill(IoUring.Sqe* sqe)
        {
            sqe->Fd = Fd;
            switch (Kind)
            {
                case Opcode.Read:
                case Opcode.Write:
                    sqe->Opcode = _sqeOpcode;
                    sqe->Offset = (ulong)(Offset + Done);
                    sqe->Address = _sqeAddress;
                    sqe->Length = _sqeLength;
                    break;
                case Opcode.Sync:
                case Opcode.DataSync:
                    sqe->Opcode = IoUring.OpFsync;
                    sqe->OpFlags = Kind == Opcode.DataSync ? IoUring.FsyncDatasync : 0;
                    break;
                case Opcode.Fallocate:
                    // fallocate's SQE: offset in off, length in addr, mode in len.
                    sqe->Opcode = IoUring.OpFallocate;
                    sqe->Offset = (ulong)Offset;
                    sqe->Address = (ulong)Length;
                    sqe->Length = (uint)Mode;
                    break;
                case Opcode.Writeback:
                    // sync_file_range's SQE: offset in off, length in len (32 bits; 0 is to the end of the file, which
                    // a longer range becomes: more write-out than asked harms no hint), flags in the op flags.
                    sqe->Opcode = IoUring.OpSyncFileRange;
                    sqe->Offset = (ulong)Offset;
                    sqe->Length = Length > uint.MaxValue ? 0 : (uint)Length;
                    sqe->OpFlags = LibC.SYNC_FILE_RANGE_WRITE;
                    break;
            }
        }

        /// <summary>Handles this operation's CQE on the completion thread: finishes it, or submits the rest.</summary>
        public void OnCompletion(int result)
        {
            Unpin();
            if (result is -(int)Errno.EINTR or -(int)Errno.EAGAIN or -(int)Errno.ECANCELED)
            {
                _engine.Submit(this);
                return;
            }
            switch (Kind)
            {
                case Opcode.Read:
                    if (result < 0)
                    {
                        FailErrno(-result, Buffers.IsSingleSegment ? "pread" : "preadv");
                        return;
                    }
                    Done += result;
                    if (result > 0 && Done < Buffers.Length)
                    {
                        _engine.Submit(this);
                        return;
                    }
                    _core.SetResult(Done);
                    return;
                case Opcode.Write:
                    if (result <= 0)
                    {
                        string call = Buffers.IsSingleSegment ? "pwrite" : "pwritev";
                        if (result == 0)
                            Fail(new BlockException(Errno.ENOSPC, $"{call}: No space left on device"));
                        else
                            FailErrno(-result, call);
                        return;
                    }
                    Done += result;
                    if (Done < Buffers.Length)
                    {
                        _engine.Submit(this);
                        return;
                    }
                    _core.SetResult(Done);
                    return;
                case Opcode.Sync:
                case Opcode.DataSync:
                    if (result < 0)
                        FailErrno(-result, Kind == Opcode.DataSync ? "fdatasync" : "fsync");
                    else
                        _core.SetResult(0);
                    return;
                case Opcode.Fallocate:
                    // EOPNOTSUPP and ENOSYS both mean "this file system cannot": report ENOTSUP so callers fall back.
                    if (result is -95 or -38)
                        Fail(new BlockException(Errno.ENOTSUP, "fallocate: Operation not supported"));
                    else if (result < 0)
                        FailErrno(-result, "fallocate");
                    else
                        _core.SetResult(0);
                    return;
                case Opcode.Writeback:
                    if (result < 0)
                        FailErrno(-result, "sync_file_range");
                    else
                        _core.SetResult(0);
                    return;
            }
        }

        private void FailErrno(int errno, string call) =>
            Fail(new BlockException((Errno)errno, $"{call}: {ErrnoText.Describe((Errno)errno)}"));

        public void Fail(Exception e) => _core.SetException(e);

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

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags)
        {
            // Completed between the awaiter's IsCompleted check and this call (the kernel was quicker than the
            // caller's way back up): continue right here instead of through the thread pool, where the stack allows
            // and no scheduling context asks otherwise.
            if (_core.GetStatus(token) != ValueTaskSourceStatus.Pending && NoSchedulingContext(flags)
                && RuntimeHelpers.TryEnsureSufficientExecutionStack())
            {
                continuation(state);
                return;
            }
            _core.OnCompleted(continuation, state, token, flags);
        }

        private static bool NoSchedulingContext(ValueTaskSourceOnCompletedFlags flags) =>
            (flags & ValueTaskSourceOnCompletedFlags.UseSchedulingContext) == 0
            || (SynchronizationContext.Current is null && TaskScheduler.Current == TaskScheduler.Default);
    }
}
