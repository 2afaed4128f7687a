using System.Buffers;
using System.Runtime.InteropServices;
using System.Threading.Tasks.Sources;
using Block.Io;
using Block.Rbd.Interop;

namespace Block.Rbd.Driver;

/// <summary>
/// One asynchronous librbd request (<c>rbd_aio_*</c>): its completion, its pinned buffers and the caller's wait.
/// Pooled per node and awaited through <see cref="IValueTaskSource"/>, so a request allocates nothing once the pool
/// is warm.
/// </summary>
/// <remarks>
/// librbd calls <see cref="OnComplete"/> on its own finisher thread; completing there only records the result and
/// queues the caller's continuation to the thread pool (<c>RunContinuationsAsynchronously</c>), so librbd's thread
/// never runs our code further and never blocks on it.
/// </remarks>
internal sealed unsafe class RbdRequest : IValueTaskSource
{
    private ManualResetValueTaskSourceCore<bool> _core = new() { RunContinuationsAsynchronously = true };
    private readonly GCHandle _self;
    private RbdNodeDriver? _owner;
    private MemoryHandle[] _pins = new MemoryHandle[4];
    private int _pinCount;
    private LibRbd.IoVec* _iov;
    private int _iovCapacity;
    private string _operation = string.Empty;
    private long _expected;

    public RbdRequest()
    {
        _self = GCHandle.Alloc(this);
    }

    /// <summary>Pins <paramref name="buffers"/> and fills the iovec array; returns it and the segment count.</summary>
    public LibRbd.IoVec* Pin(IoVector buffers, out int count)
    {
        count = buffers.SegmentCount;
        if (count > _iovCapacity)
        {
            NativeMemory.Free(_iov);
            _iovCapacity = Math.Max(count, 4);
            _iov = (LibRbd.IoVec*)NativeMemory.Alloc((nuint)_iovCapacity, (nuint)sizeof(LibRbd.IoVec));
        }
        if (count > _pins.Length)
            _pins = new MemoryHandle[Math.Max(count, _pins.Length * 2)];
        int i = 0;
        foreach (var segment in buffers)
        {
            var pin = segment.Pin();
            _pins[i] = pin;
            _iov[i].Base = pin.Pointer;
            _iov[i].Length = (nuint)segment.Length;
            i++;
        }
        _pinCount = i;
        count = i;
        return _iov;
    }

    /// <summary>Creates the librbd completion for an operation of <paramref name="owner"/>.</summary>
    /// <param name="owner">The node.</param>
    /// <param name="operation">The operation's name in error messages.</param>
    /// <param name="expected">The return value that means complete success (the bytes of a read), or -1 for "not negative".</param>
    public nint Begin(RbdNodeDriver owner, string operation, long expected)
    {
        _owner = owner;
        _operation = operation;
        _expected = expected;
        int rc = LibRbd.AioCreateCompletion(GCHandle.ToIntPtr(_self), &OnComplete, out nint completion);
        if (rc < 0)
        {
            Unpin();
            throw RbdErrors.Exception($"rbd {operation}", rc);
        }
        return completion;
    }

    /// <summary>The caller's wait.</summary>
    public ValueTask Task => new(this, _core.Version);

    /// <summary>Fails the request when librbd refused to queue it (its completion is released here).</summary>
    public ValueTask Refused(nint completion, int rc)
    {
        LibRbd.AioRelease(completion);
        Unpin();
        var owner = _owner!;
        _owner = null;
        var error = RbdErrors.Exception($"rbd {_operation}", rc);
        owner.Return(this);
        return ValueTask.FromException(error);
    }

    [UnmanagedCallersOnly]
    private static void OnComplete(nint completion, nint arg)
    {
        var request = (RbdRequest)GCHandle.FromIntPtr(arg).Target!;
        long rc = LibRbd.AioGetReturnValue(completion);
        LibRbd.AioRelease(completion);
        request.Complete(rc);
    }

    private void Complete(long rc)
    {
        Unpin();
        if (rc < 0)
            _core.SetException(RbdErrors.Exception($"rbd {_operation}", rc));
        else if (_expected >= 0 && rc != _expected)
            _core.SetException(new BlockException(Errno.EIO, $"rbd {_operation}: {rc} of {_expected} bytes"));
        else
            _core.SetResult(true);
    }

    private void Unpin()
    {
        for (int i = 0; i < _pinCount; i++)
        {
            _pins[i].Dispose();
            _pins[i] = default;
        }
        _pinCount = 0;
    }

    /// <summary>Frees the iovec array and the handle; only for a request that is not in flight.</summary>
    public void Free()
    {
        NativeMemory.Free(_iov);
        _iov = null;
        _iovCapacity = 0;
        _self.Free();
    }

    void IValueTaskSource.GetResult(short token)
    {
        var owner = _owner!;
        try
        {
            _core.GetResult(token);
        }
        finally
        {
            _core.Reset();
            _owner = null;
            owner.Return(this);
        }
    }

    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
