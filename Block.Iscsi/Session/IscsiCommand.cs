using System.Buffers;
using System.Runtime.InteropServices;
using System.Threading.Tasks.Sources;
using Block.Graph;
using Block.Io;
using Block.Iscsi.Interop;

namespace Block.Iscsi.Session;

/// <summary>
/// One SCSI command of a node, from submission to completion: its parameters, the pinned buffers and the native
/// scatter list libiscsi reads or fills, and the awaitable the caller waits on. Pooled per session, so a request
/// allocates nothing once the pool is warm.
/// </summary>
/// <remarks>
/// libiscsi gets a <see cref="GCHandle"/> to the command as its callback's private data; the handle lives as long as
/// the session, so a callback that arrives late (a context destroyed with commands that were given up on) still
/// finds a live object and is recognised as stale by its task pointer.
/// </remarks>
internal sealed unsafe class IscsiCommand : IValueTaskSource, IValueTaskSource<BlockStatus>
{
    private ManualResetValueTaskSourceCore<BlockStatus> _core = new() { RunContinuationsAsynchronously = true };
    private MemoryHandle[] _pins = new MemoryHandle[4];
    private int _pinCount;
    private LibIscsi.ScsiIovec* _iov;
    private int _iovCapacity;

    public IscsiCommand(IscsiSession session)
    {
        Session = session;
        Handle = GCHandle.Alloc(this);
        UnmapList = (LibIscsi.UnmapDescriptor*)NativeMemory.AllocZeroed((nuint)sizeof(LibIscsi.UnmapDescriptor));
    }

    public IscsiSession Session { get; }

    /// <summary>The handle passed to libiscsi as private data.</summary>
    public GCHandle Handle { get; }

    public IscsiCommandKind Kind;

    /// <summary>First logical block.</summary>
    public ulong Lba;

    /// <summary>Logical blocks (bytes for reads and writes come from <see cref="Iov"/>).</summary>
    public uint Blocks;

    /// <summary>Bytes of data moved by a read or write.</summary>
    public uint DataLength;

    /// <summary>GET LBA STATUS: the most bytes the answer may cover (the caller's range).</summary>
    public long StatusLimitBytes;

    /// <summary>GET LBA STATUS: the byte offset asked about.</summary>
    public long StatusOffset;

    /// <summary>WRITE SAME's UNMAP bit.</summary>
    public bool Unmap;

    /// <summary>WRITE's FUA bit (only on a LUN with DPOFUA).</summary>
    public bool Fua;

    /// <summary>The native scatter list of a read or write, <see cref="IovCount"/> entries.</summary>
    public LibIscsi.ScsiIovec* Iov => _iov;

    public int IovCount;

    /// <summary>The one extent of an UNMAP, kept until the command ends.</summary>
    public LibIscsi.UnmapDescriptor* UnmapList { get; }

    /// <summary>The running libiscsi task, or 0.</summary>
    public nint Task;

    /// <summary>When the command was sent (<see cref="Environment.TickCount64"/>).</summary>
    public long StartedMs;

    /// <summary>Times the command was sent again after a UNIT ATTENTION or BUSY.</summary>
    public int Retries;

    /// <summary>Given up on (the session died) while libiscsi still held it: never reused.</summary>
    public bool Orphaned;

    /// <summary>Starts a command and returns the awaitable of its completion.</summary>
    public ValueTask Start(IscsiCommandKind kind, ulong lba, uint blocks, bool fua = false)
    {
        Kind = kind;
        Fua = fua;
        Lba = lba;
        Blocks = blocks;
        Retries = 0;
        return new ValueTask(this, _core.Version);
    }

    /// <summary>As <see cref="Start"/>, for GET LBA STATUS, whose result is the status.</summary>
    public ValueTask<BlockStatus> StartStatus(ulong lba)
    {
        Kind = IscsiCommandKind.LbaStatus;
        Fua = false;
        Lba = lba;
        Blocks = 0;
        Retries = 0;
        return new ValueTask<BlockStatus>(this, _core.Version);
    }

    /// <summary>Pins <paramref name="buffers"/> and builds the native scatter list over them (no copy).</summary>
    public void SetBuffers(IoVector buffers)
    {
        int count = buffers.SegmentCount;
        if (count > _iovCapacity)
        {
            NativeMemory.Free(_iov);
            _iovCapacity = Math.Max(count, 4);
            _iov = (LibIscsi.ScsiIovec*)NativeMemory.Alloc((nuint)_iovCapacity, (nuint)sizeof(LibIscsi.ScsiIovec));
        }
        if (count > _pins.Length)
            _pins = new MemoryHandle[Math.Max(count, _pins.Length * 2)];
        int i = 0;
        foreach (var segment in buffers)
        {
            _pins[i] = segment.Pin();
            _iov[i].Base = (nint)_pins[i].Pointer;
            _iov[i].Length = (nuint)segment.Length;
            i++;
        }
        _pinCount = i;
        IovCount = i;
        DataLength = (uint)buffers.Length;
    }

    /// <summary>Completes the command (on the loop thread) and unpins its buffers.</summary>
    public void Complete(Exception? error, BlockStatus status = default)
    {
        Unpin();
        if (error is null)
            _core.SetResult(status);
        else
            _core.SetException(error);
    }

    private void Unpin()
    {
        for (int i = 0; i < _pinCount; i++)
            _pins[i].Dispose();
        _pinCount = 0;
        IovCount = 0;
    }

    /// <summary>Frees the native memory; the session is closed and libiscsi holds nothing of this command.</summary>
    public void Free()
    {
        Unpin();
        NativeMemory.Free(_iov);
        _iov = null;
        NativeMemory.Free(UnmapList);
        Handle.Free();
    }

    void IValueTaskSource.GetResult(short token)
    {
        try
        {
            _core.GetResult(token);
        }
        finally
        {
            Recycle();
        }
    }

    BlockStatus IValueTaskSource<BlockStatus>.GetResult(short token)
    {
        try
        {
            return _core.GetResult(token);
        }
        finally
        {
            Recycle();
        }
    }

    private void Recycle()
    {
        _core.Reset();
        if (!Orphaned)
            Session.Return(this);
    }

    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _core.GetStatus(token);

    ValueTaskSourceStatus IValueTaskSource<BlockStatus>.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);

    void IValueTaskSource<BlockStatus>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
