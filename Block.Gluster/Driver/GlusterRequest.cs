using System.Buffers;
using System.Runtime.InteropServices;
using System.Threading.Tasks.Sources;
using Block.Gluster.Interop;
using Block.Io;

namespace Block.Gluster.Driver;

/// <summary>
/// One <c>glfs_*_async</c> call and its completion: the parameters in fields, awaited through
/// <see cref="IValueTaskSource{TResult}"/>, pooled per connection so that a request in flight allocates nothing.
/// </summary>
/// <remarks>
/// <para>gfapi calls back on one of its own threads; the callback finds the request through a GCHandle that the
/// request holds for its whole life, and continuations run asynchronously, so gfapi's thread never runs a caller's
/// code. There is no thread per request.</para>
/// <para>A request's buffers stay pinned, and its <c>iovec</c> array allocated, until gfapi has called back: a read
/// is copied into the caller's memory inside gfapi's callback path. A request that the connection gives up on
/// (<see cref="Abandon"/>) fails at once, but keeps its pins until gfapi calls back, if it ever does, and is then
/// dropped rather than pooled.</para>
/// </remarks>
internal sealed unsafe class GlusterRequest : IValueTaskSource<long>
{
    private const int Idle = 0, InFlight = 1, Abandoned = 2;

    private ManualResetValueTaskSourceCore<long> _core = new() { RunContinuationsAsynchronously = true };
    private GCHandle _self;
    private GlusterConnection? _owner;
    private MemoryHandle[] _pins = new MemoryHandle[4];
    private int _pinCount;
    private LibGfapi.IoVec* _iov;
    private int _iovCapacity;
    private int _phase;

    public GlusterRequest()
    {
        _self = GCHandle.Alloc(this);
    }

    public nint Cookie => GCHandle.ToIntPtr(_self);

    public GlusterOperation Operation;
    public long Offset;
    public long Count;
    public long StartTicks;
    public IoVector Buffers;

    /// <summary>The pinned <c>iovec</c> array of a read or write.</summary>
    public LibGfapi.IoVec* IoVecs => _iov;

    /// <summary>How many entries <see cref="IoVecs"/> holds.</summary>
    public int IoVecCount => _pinCount;

    public static GlusterRequest FromCookie(nint cookie) => (GlusterRequest)GCHandle.FromIntPtr(cookie).Target!;

    /// <summary>Pins every segment of <paramref name="buffers"/> and describes them as an <c>iovec</c> array.</summary>
    public void Pin(IoVector buffers)
    {
        Buffers = buffers;
        int count = buffers.SegmentCount;
        if (count > _iovCapacity)
        {
            NativeMemory.Free(_iov);
            _iov = (LibGfapi.IoVec*)NativeMemory.Alloc((nuint)count, (nuint)sizeof(LibGfapi.IoVec));
            _iovCapacity = count;
        }
        if (count > _pins.Length)
            _pins = new MemoryHandle[count];
        int i = 0;
        foreach (var segment in buffers)
        {
            _pins[i] = segment.Pin();
            _iov[i] = new LibGfapi.IoVec { Base = _pins[i].Pointer, Length = (nuint)segment.Length };
            i++;
        }
        _pinCount = i;
    }

    public ValueTask<long> Begin(GlusterConnection owner)
    {
        _owner = owner;
        StartTicks = Environment.TickCount64;
        Volatile.Write(ref _phase, InFlight);
        return new ValueTask<long>(this, _core.Version);
    }

    /// <summary>gfapi's answer (from its callback, or a refused start): true if the request was still waiting for it.</summary>
    public bool Finish(long result, int errno)
    {
        int was = Interlocked.CompareExchange(ref _phase, Idle, InFlight);
        if (was == Abandoned)
        {
            // Given up on already: the caller has its error; now gfapi is done with the memory.
            Unpin();
            Free();
            return false;
        }
        if (was != InFlight)
            return false;
        var owner = _owner!;
        owner.Untrack(this);
        Unpin();
        if (result < 0)
            _core.SetException(owner.Error(Operation, errno));
        else
            _core.SetResult(result);
        return true;
    }

    /// <summary>Fails the request now, without waiting for gfapi, which may still hold its memory.</summary>
    public bool Abandon(Exception error)
    {
        if (Interlocked.CompareExchange(ref _phase, Abandoned, InFlight) != InFlight)
            return false;
        _core.SetException(error);
        return true;
    }

    /// <summary>Fails a request that never reached gfapi.</summary>
    public void Refuse(Exception error)
    {
        Volatile.Write(ref _phase, Idle);
        Unpin();
        _core.SetException(error);
    }

    /// <summary>Releases the GCHandle and the <c>iovec</c> array, once gfapi can no longer call back.</summary>
    public void Free()
    {
        if (_self.IsAllocated)
            _self.Free();
        NativeMemory.Free(_iov);
        _iov = null;
        _iovCapacity = 0;
    }

    private void Unpin()
    {
        for (int i = 0; i < _pinCount; i++)
            _pins[i].Dispose();
        _pinCount = 0;
        Buffers = default;
    }

    long IValueTaskSource<long>.GetResult(short token)
    {
        var owner = _owner!;
        try
        {
            return _core.GetResult(token);
        }
        finally
        {
            _core.Reset();
            // An abandoned request stays out of the pool: gfapi may still call back into it.
            if (Volatile.Read(ref _phase) == Idle)
            {
                _owner = null;
                owner.Return(this);
            }
        }
    }

    ValueTaskSourceStatus IValueTaskSource<long>.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource<long>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
