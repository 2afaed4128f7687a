using System.Threading.Tasks.Sources;
using Block.Io;

namespace Block.Curl.Transfer;

/// <summary>
/// One read waiting for a transfer: where its bytes lie in the transfer's buffer and where they go. Pooled per node
/// and awaited through <see cref="IValueTaskSource"/>, so a read that waits allocates nothing.
/// </summary>
internal sealed class CurlRead : IValueTaskSource
{
    private ManualResetValueTaskSourceCore<bool> _core = new() { RunContinuationsAsynchronously = true };
    private CurlNodeDriver? _owner;

    /// <summary>The image offset of the first byte.</summary>
    public long Offset;

    /// <summary>The bytes to fill.</summary>
    public IoVector Target;

    /// <summary>Starts a wait for <paramref name="owner"/>'s read of <paramref name="target"/> at <paramref name="offset"/>.</summary>
    public ValueTask Start(CurlNodeDriver owner, long offset, IoVector target)
    {
        _owner = owner;
        Offset = offset;
        Target = target;
        return new ValueTask(this, _core.Version);
    }

    /// <summary>Completes the read (from the transfer thread, under the node's lock).</summary>
    public void Complete(Exception? error)
    {
        Target = default;
        if (error is null)
            _core.SetResult(true);
        else
            _core.SetException(error);
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
