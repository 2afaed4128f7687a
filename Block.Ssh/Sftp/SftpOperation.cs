using System.Threading.Tasks.Sources;
using Block.Io;

namespace Block.Ssh.Sftp;

/// <summary>What an <see cref="SftpOperation"/> asks of the server.</summary>
internal enum SftpOperationKind : byte
{
    Open,
    Close,
    Fstat,
    Read,
    Write,
    Fsync,
}

/// <summary>
/// One caller's request to an <see cref="SftpChannel"/> and its completion, awaited through
/// <see cref="IValueTaskSource"/>. A read or write of any length is one operation, which the channel's thread cuts into
/// SFTP requests of at most <see cref="SftpChannel.ChunkBytes"/>. Reads, writes and flushes are pooled per channel, so
/// a request in flight allocates nothing.
/// </summary>
/// <remarks>Continuations run asynchronously, so the channel's thread never runs a caller's code.</remarks>
internal sealed class SftpOperation : IValueTaskSource, IValueTaskSource<long>
{
    private ManualResetValueTaskSourceCore<long> _core = new() { RunContinuationsAsynchronously = true };
    private SftpChannel? _owner;

    public SftpOperation(bool pooled) => Pooled = pooled;

    /// <summary>Whether the operation returns to its channel's pool after its result is taken.</summary>
    public bool Pooled { get; }

    public SftpOperationKind Kind;
    public byte[]? Handle;
    public long Offset;
    public IoVector Vector;
    public string? Path;
    public uint OpenFlags;
    public uint? Permissions;

    // The channel thread's progress through the operation.
    /// <summary>Bytes of <see cref="Vector"/> handed to SFTP requests so far.</summary>
    public int Issued;

    /// <summary>SFTP requests of this operation still unanswered.</summary>
    public int Outstanding;

    /// <summary>Whether every request the operation needs has been sent (or an error stopped the sending).</summary>
    public bool FullyIssued;

    /// <summary>A read's first byte at or past the end of the file, or its length.</summary>
    public int EndOfData;

    /// <summary>The first failure among its requests.</summary>
    public BlockException? Error;

    /// <summary>An open's file handle; a stat's file size.</summary>
    public byte[]? ResultHandle;
    public long ResultSize;

    public ValueTask<long> Begin(SftpChannel owner)
    {
        _owner = owner;
        Issued = 0;
        Outstanding = 0;
        FullyIssued = false;
        EndOfData = Vector.Length;
        Error = null;
        return new ValueTask<long>(this, _core.Version);
    }

    public ValueTask BeginUntyped(SftpChannel owner)
    {
        Begin(owner);
        return new ValueTask(this, _core.Version);
    }

    public void Complete(long result)
    {
        Vector = default;
        _core.SetResult(result);
    }

    public void Fail(BlockException error)
    {
        Vector = default;
        _core.SetException(error);
    }

    long IValueTaskSource<long>.GetResult(short token) => TakeResult(token);

    void IValueTaskSource.GetResult(short token) => TakeResult(token);

    private long TakeResult(short token)
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
            Handle = null;
            Path = null;
            Error = null;
            if (Pooled)
                owner.Return(this);
        }
    }

    ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _core.GetStatus(token);

    ValueTaskSourceStatus IValueTaskSource<long>.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);

    void IValueTaskSource<long>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
