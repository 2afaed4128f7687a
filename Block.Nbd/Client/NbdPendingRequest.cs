using System.Threading.Tasks.Sources;
using Block.Io;

namespace Block.Nbd.Client;

/// <summary>
/// One request slot of an <see cref="NbdClient"/>: the request's parameters, what its reply chunks have delivered,
/// and the completion the caller awaits. Slots are made once per connection and reused, so a request allocates
/// nothing.
/// </summary>
internal sealed class NbdPendingRequest : IValueTaskSource
{
    private ManualResetValueTaskSourceCore<bool> _core = new() { RunContinuationsAsynchronously = true };

    public NbdPendingRequest(int index)
    {
        Index = index;
    }

    /// <summary>The slot's index, the low 16 bits of its cookies.</summary>
    public int Index { get; }

    /// <summary>The cookie of the request in flight (a new generation each use, so late replies do not match).</summary>
    public ulong Cookie;

    /// <summary>True from the moment the request is registered until its reply is complete or the connection dies.</summary>
    public bool InFlight;

    /// <summary>The next part of the same split request, sent after this one (<c>NbdClient.RunSplitAsync</c>).</summary>
    public NbdPendingRequest? Next;

    public ushort Command;
    public long Offset;
    public int Length;

    /// <summary>Where a READ's data goes.</summary>
    public IoVector Buffer;

    /// <summary>Bytes of a READ that chunks have filled.</summary>
    public long Covered;

    /// <summary>The first error a reply reported (NBD error value), 0 for none.</summary>
    public uint Error;

    /// <summary>The server's message with <see cref="Error"/>, if any.</summary>
    public string? ErrorMessage;

    /// <summary>BLOCK_STATUS: whether an extent arrived, and the first extent.</summary>
    public bool HasExtent;
    public uint ExtentLength;
    public uint ExtentFlags;

    public short Version => _core.Version;

    public void Reset(ushort command, long offset, int length, IoVector buffer)
    {
        _core.Reset();
        Command = command;
        Offset = offset;
        Length = length;
        Buffer = buffer;
        Covered = 0;
        Error = 0;
        ErrorMessage = null;
        HasExtent = false;
        ExtentLength = 0;
        ExtentFlags = 0;
    }

    public void Complete() => _core.SetResult(true);

    public void Fail(Exception error) => _core.SetException(error);

    public void GetResult(short token) => _core.GetResult(token);

    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
