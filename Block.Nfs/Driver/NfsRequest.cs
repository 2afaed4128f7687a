using System.Buffers;
using System.Runtime.InteropServices;
using System.Threading.Tasks.Sources;
using Block.Io;
using Block.Nfs.Interop;

namespace Block.Nfs.Driver;

/// <summary>
/// One libnfs call and its completion: the parameters in fields, awaited through <see cref="IValueTaskSource"/>.
/// Reads, writes and flushes are pooled per mount, so a request in flight allocates nothing.
/// </summary>
/// <remarks>
/// A write's bytes stay pinned (one segment) or copied into a native bounce buffer (several) until libnfs's callback
/// has run or the mount has been torn down: whatever libnfs does with the pointer, it never outlives the request.
/// Continuations run asynchronously, so the event-loop thread never runs a caller's code.
/// </remarks>
internal sealed unsafe class NfsRequest : IValueTaskSource, IValueTaskSource<int>
{
    private ManualResetValueTaskSourceCore<int> _core = new() { RunContinuationsAsynchronously = true };
    private NfsMount? _owner;
    private MemoryHandle _pin;
    private byte* _bounce;

    public NfsRequest(bool pooled)
    {
        Pooled = pooled;
    }

    /// <summary>Whether the request returns to its mount's pool after its result is taken.</summary>
    public bool Pooled { get; }

    public NfsOperation Operation;
    public nint File;
    public long Offset;
    public int Count;
    public IoVector Target;
    public string? Path;
    public string? Server;
    public int Flags;
    public long StartTicks;
    public LibNfs.Stat64 Stat;
    public nint ResultHandle;

    /// <summary>The bytes a write sends, valid while the request is in flight.</summary>
    public byte* Data;

    public ValueTask<int> Begin(NfsMount owner)
    {
        _owner = owner;
        return new ValueTask<int>(this, _core.Version);
    }

    /// <summary>Pins (or copies) <paramref name="source"/> for a write.</summary>
    public void HoldForWrite(IoVector source)
    {
        if (source.IsSingleSegment)
        {
            _pin = source.FirstSegment.Pin();
            Data = (byte*)_pin.Pointer;
            return;
        }
        _bounce = (byte*)NativeMemory.Alloc((nuint)Math.Max(1, source.Length));
        source.CopyTo(new Span<byte>(_bounce, source.Length));
        Data = _bounce;
    }

    public void Complete(int result)
    {
        Release();
        _core.SetResult(result);
    }

    public void Fail(Exception error)
    {
        Release();
        _core.SetException(error);
    }

    private void Release()
    {
        Target = default;
        Data = null;
        _pin.Dispose();
        _pin = default;
        if (_bounce != null)
        {
            NativeMemory.Free(_bounce);
            _bounce = null;
        }
    }

    int IValueTaskSource<int>.GetResult(short token) => TakeResult(token);

    void IValueTaskSource.GetResult(short token) => TakeResult(token);

    private int TakeResult(short token)
    {
        var owner = _owner!;
        try
        {
            return _core.GetResult(token);
        }
        finally
        {
            _core.Reset();
            _owner = null;
            Path = null;
            Server = null;
            if (Pooled)
                owner.Return(this);
        }
    }

    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _core.GetStatus(token);

    ValueTaskSourceStatus IValueTaskSource<int>.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);

    void IValueTaskSource<int>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
