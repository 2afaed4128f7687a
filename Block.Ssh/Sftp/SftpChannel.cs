using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using System.Text;
using Block.Io;
using Block.Ssh.Interop;

namespace Block.Ssh.Sftp;

/// <summary>
/// An SFTP version 3 client (draft-ietf-secsh-filexfer-02, with OpenSSH's <c>fsync@openssh.com</c> and
/// <c>limits@openssh.com</c>) on one libssh session channel, with the one thread that drives it: operations from any
/// thread are queued here, cut into SFTP requests by the thread, written to the channel, and completed when their
/// replies come in. Many requests are in flight at once; the thread sleeps in <c>poll</c> on the session's socket and
/// an eventfd that a submission writes to.
/// </summary>
/// <remarks>
/// <para>Why our own SFTP: QEMU's driver uses libssh's, which sends one request and waits for its answer, and SSH.NET
/// (our first base) could not send <c>fsync@openssh.com</c> and allocated 1.6–23 KiB per read. Here a read of any size
/// is one pooled operation whose requests are all in flight together, and the bytes go from the channel into the
/// caller's buffer with one copy.</para>
/// <para>The channel is used in libssh's blocking mode. A blocking write can wait for the server's window, and while it
/// waits our side of the channel is not drained: if the server then had more read data to send than our window holds,
/// it would stop reading our requests and both sides would wait forever. So the read data in flight is kept under
/// <see cref="ReadBytesInFlight"/>, below the 640 000 bytes libssh's window never falls under once drained.</para>
/// <para>A malformed reply (a packet over the size limit, an unknown request id, more data than was asked for) ends the
/// channel: every request in flight fails with EIO, and so does every later one.</para>
/// </remarks>
internal sealed unsafe partial class SftpChannel : IDisposable
{
    /// <summary>The most bytes one SFTP read or write request carries.</summary>
    /// <remarks>OpenSSH's sftp-server takes up to 255 KiB; 64 KiB requests keep eight reads in flight under the window bound.</remarks>
    public const int ChunkBytes = 64 * 1024;

    /// <summary>The read data that may be unanswered at once (see the class remarks).</summary>
    internal const int ReadBytesInFlight = 512 * 1024;

    /// <summary>The write data that may be unanswered at once: under OpenSSH's 2 MiB channel window, so that a write never waits for window.</summary>
    internal const int WriteBytesInFlight = 1024 * 1024;

    /// <summary>Requests in flight at once.</summary>
    internal const int MaxRequests = 64;

    /// <summary>The largest reply accepted: a full data reply and its header, or a name list of that size.</summary>
    private const int MaxPacket = ChunkBytes + 1024;

    /// <summary>How long the handshake waits for each of the server's replies.</summary>
    private const int HandshakeTimeoutMilliseconds = 60_000;

    /// <summary>How often the thread wakes with requests in flight though nothing arrived, to look at libssh's buffers again.</summary>
    private const int TickMilliseconds = 1000;

    private const byte FxpInit = 1, FxpVersion = 2, FxpOpen = 3, FxpClose = 4, FxpRead = 5, FxpWrite = 6, FxpFstat = 8;
    private const byte FxpStatus = 101, FxpHandle = 102, FxpData = 103, FxpAttrs = 105, FxpExtended = 200, FxpExtendedReply = 201;
    private const uint StatusOk = 0, StatusEof = 1, StatusNoSuchFile = 2, StatusPermissionDenied = 3, StatusOpUnsupported = 8;
    private const uint AttrSize = 0x1, AttrPermissions = 0x4;
    private const string FsyncExtension = "fsync@openssh.com";
    private const string LimitsExtension = "limits@openssh.com";

    private struct Slot
    {
        public SftpOperation? Operation;
        public long Offset;
        public int Position;
        public int Length;
        public uint Generation;
    }

    private readonly string _server;
    private readonly ConcurrentQueue<SftpOperation> _submitted = new();
    private readonly Stack<SftpOperation> _pool = new();
    private readonly Queue<SftpOperation> _issuing = new();
    private readonly Slot[] _slots = new Slot[MaxRequests];
    private readonly Stack<int> _freeSlots = new(MaxRequests);
    private readonly Lock _gate = new();
    private readonly byte* _receive;
    private readonly byte* _send;
    private readonly int _receiveCapacity = 2 * MaxPacket;
    private readonly int _sendCapacity = ChunkBytes + 8192;
    private nint _session;
    private nint _channel;
    private int _socket;
    private int _wakeFd = -1;
    private Thread? _thread;
    private int _have;
    private int _readBytesInFlight;
    private int _writeBytesInFlight;
    private bool _dead;
    private BlockException? _deadError;
    private volatile bool _stopping;
    private bool _disposed;

    /// <summary>Takes over <paramref name="session"/> and <paramref name="channel"/> (the <c>sftp</c> subsystem already
    /// started on it): sends INIT, reads the server's version and extensions, and starts the thread.</summary>
    public static SftpChannel Start(nint session, nint channel, string server)
    {
        var sftp = new SftpChannel(session, channel, server);
        try
        {
            sftp.Handshake();
            sftp._wakeFd = LibC.EventFd(0, LibC.EfdCloexec | LibC.EfdNonblock);
            if (sftp._wakeFd < 0)
                throw new BlockException(Errno.ENOMEM, $"eventfd failed: errno {Marshal.GetLastPInvokeError()}");
            sftp._thread = new Thread(sftp.Run) { IsBackground = true, Name = $"sftp {server}" };
            sftp._thread.Start();
            return sftp;
        }
        catch
        {
            sftp.Dispose();
            throw;
        }
    }

    private SftpChannel(nint session, nint channel, string server)
    {
        _session = session;
        _channel = channel;
        _server = server;
        _socket = LibSsh.GetFd(session);
        _receive = (byte*)NativeMemory.Alloc((nuint)_receiveCapacity);
        _send = (byte*)NativeMemory.Alloc((nuint)_sendCapacity);
        for (int i = MaxRequests - 1; i >= 0; i--)
            _freeSlots.Push(i);
    }

    /// <summary>
    /// How often a reply was already in libssh's buffers when the thread woke from a poll that timed out: each one a
    /// request that waited <see cref="TickMilliseconds"/> for nothing. Zero unless a read took in the socket's bytes
    /// behind the last look at the replies (as reading stderr after stdout once did, stalling uploads for seconds).
    /// </summary>
    internal int MissedWakeups { get; private set; }

    /// <summary>Whether the server takes <c>fsync@openssh.com</c>, so that a flush reaches its disk.</summary>
    public bool CanFsync { get; private set; }

    /// <summary>The largest read or write the server takes in one request (from <c>limits@openssh.com</c>, else 32 KiB).</summary>
    public int RequestBytes { get; private set; } = 32 * 1024;

    /// <summary>Reads <paramref name="target"/>.Length bytes at <paramref name="offset"/>; bytes past the end of the file read as zeroes.</summary>
    public ValueTask ReadAsync(byte[] handle, long offset, IoVector target) => SubmitPooled(SftpOperationKind.Read, handle, offset, target);

    /// <summary>Writes <paramref name="source"/> at <paramref name="offset"/>.</summary>
    public ValueTask WriteAsync(byte[] handle, long offset, IoVector source) => SubmitPooled(SftpOperationKind.Write, handle, offset, source);

    /// <summary>Sends <c>fsync@openssh.com</c> for the handle (only when <see cref="CanFsync"/>).</summary>
    public ValueTask FsyncAsync(byte[] handle) => SubmitPooled(SftpOperationKind.Fsync, handle, 0, default);

    private ValueTask SubmitPooled(SftpOperationKind kind, byte[] handle, long offset, IoVector vector)
    {
        if (vector.Length == 0 && kind != SftpOperationKind.Fsync)
            return default;
        SftpOperation? op;
        lock (_pool)
            _pool.TryPop(out op);
        op ??= new SftpOperation(pooled: true);
        op.Kind = kind;
        op.Handle = handle;
        op.Offset = offset;
        op.Vector = vector;
        var pending = op.BeginUntyped(this);
        Enqueue(op);
        return pending;
    }

    internal void Return(SftpOperation op)
    {
        lock (_pool)
            _pool.Push(op);
    }

    private ValueTask<long> Submit(SftpOperation op)
    {
        var pending = op.Begin(this);
        Enqueue(op);
        return pending;
    }

    private void Enqueue(SftpOperation op)
    {
        BlockException? refused;
        lock (_gate)
        {
            refused = _dead || _stopping ? _deadError ?? Closed() : null;
            if (refused is null)
                _submitted.Enqueue(op);
        }
        if (refused != null)
            op.Fail(refused);
        else
            Wake();
    }

    private static BlockException Closed() => new(Errno.EIO, "ssh: the connection is closed");

    private void Wake()
    {
        ulong one = 1;
        LibC.Write(_wakeFd, &one, sizeof(ulong));
    }

    // ---- The handshake, on the connecting thread before the channel's thread starts ----

    private void Handshake()
    {
        int length = BeginPacket(FxpInit);
        length = PutUInt32(length, 3);
        SendPacket(length);
        var version = ReceiveBlocking();
        if (version.Type != FxpVersion)
            throw Malformed($"a reply of type {version.Type} to INIT");
        var extensions = new Reader(version.Body);
        extensions.UInt32();
        bool limits = false;
        while (extensions.Remaining > 0)
        {
            var name = extensions.String();
            extensions.String();
            if (name.SequenceEqual("fsync@openssh.com"u8))
                CanFsync = true;
            else if (name.SequenceEqual("limits@openssh.com"u8))
                limits = true;
        }
        if (!limits)
            return;
        length = BeginPacket(FxpExtended);
        length = PutUInt32(length, 0);
        length = PutString(length, LimitsExtension);
        SendPacket(length);
        var reply = ReceiveBlocking();
        if (reply.Type != FxpExtendedReply)
            return; // A server that lists the extension but refuses it: keep the protocol's 32 KiB.
        var r = new Reader(reply.Body);
        r.UInt32();
        r.UInt64();
        ulong maxRead = r.UInt64(), maxWrite = r.UInt64();
        ulong max = Math.Min(maxRead == 0 ? ChunkBytes : maxRead, maxWrite == 0 ? ChunkBytes : maxWrite);
        RequestBytes = (int)Math.Clamp(max, 512, ChunkBytes);
    }

    private readonly ref struct Packet(byte type, ReadOnlySpan<byte> body)
    {
        public byte Type { get; } = type;

        /// <summary>Everything after the type byte.</summary>
        public ReadOnlySpan<byte> Body { get; } = body;
    }

    /// <summary>Reads one whole packet with libssh's blocking read (the handshake only).</summary>
    private Packet ReceiveBlocking()
    {
        _have = 0;
        while (true)
        {
            if (_have >= 4)
            {
                uint length = BinaryPrimitives.ReadUInt32BigEndian(new ReadOnlySpan<byte>(_receive, 4));
                if (length == 0 || length > MaxPacket)
                    throw Malformed($"a packet of {length} bytes");
                if (_have >= 4 + length)
                {
                    _have = 0;
                    return new Packet(_receive[4], new ReadOnlySpan<byte>(_receive + 5, (int)length - 1));
                }
            }
            int n = LibSsh.ChannelReadTimeout(_channel, _receive + _have, (uint)(_receiveCapacity - _have), 0, HandshakeTimeoutMilliseconds);
            if (n == 0)
                throw new BlockException(Errno.EIO, $"failed to initialize sftp session: the SFTP server at {_server} did not answer");
            if (n < 0)
                throw new BlockException(Errno.EIO, $"failed to initialize sftp session: {LibSsh.GetError(_session)}");
            _have += n;
        }
    }

    // ---- The channel's thread ----

    private void Run()
    {
        var fds = stackalloc LibC.PollFd[2];
        bool timedOut = false;
        while (true)
        {
            while (_submitted.TryDequeue(out var op))
                _issuing.Enqueue(op);
            try
            {
                Issue();
                if (_stopping && _issuing.Count == 0 && _freeSlots.Count == MaxRequests && _submitted.IsEmpty)
                    break;
                // What the server writes to the channel's stderr (an sftp-server's log) is read and dropped, so that
                // it never piles up in libssh's buffers. It comes first: reading either stream makes libssh take in
                // what the socket holds, and the last read before poll must be the one that would see replies.
                if (LibSsh.ChannelReadNonblocking(_channel, _send, (uint)_sendCapacity, 1) > 0)
                    continue;
                int n = LibSsh.ChannelReadNonblocking(_channel, _receive + _have, (uint)(_receiveCapacity - _have), 0);
                if (n > 0)
                {
                    if (timedOut)
                        MissedWakeups++;
                    timedOut = false;
                    _have += n;
                    Dispatch();
                    continue;
                }
                if (n < 0)
                    throw new BlockException(Errno.EIO, $"ssh: the connection to {_server} is lost: {LostReason(n)}");
            }
            catch (BlockException e)
            {
                Die(e);
                return;
            }
            fds[0] = new LibC.PollFd { Fd = _wakeFd, Events = LibC.PollIn };
            fds[1] = new LibC.PollFd { Fd = _socket, Events = LibC.PollIn };
            int ready = LibC.Poll(fds, 2, _freeSlots.Count < MaxRequests ? TickMilliseconds : -1);
            timedOut = ready == 0;
            if (ready > 0 && fds[0].Revents != 0)
            {
                ulong count;
                LibC.Read(_wakeFd, &count, sizeof(ulong));
            }
        }
    }

    private string LostReason(int rc)
    {
        string error = LibSsh.GetError(_session);
        return rc == LibSsh.Eof || string.IsNullOrEmpty(error) ? "the server closed the channel" : error;
    }

    /// <summary>Sends requests for the queued operations while slots and the read window allow.</summary>
    private void Issue()
    {
        while (_issuing.Count > 0)
        {
            var op = _issuing.Peek();
            if (op.Error != null)
            {
                FinishIssuing(op);
                continue;
            }
            if (_freeSlots.Count == 0)
                return;
            switch (op.Kind)
            {
                case SftpOperationKind.Read:
                {
                    int length = Math.Min(RequestBytes, op.Vector.Length - op.Issued);
                    if (_readBytesInFlight > 0 && _readBytesInFlight + length > ReadBytesInFlight)
                        return;
                    _readBytesInFlight += length;
                    SendRead(Take(op, op.Offset + op.Issued, op.Issued, length));
                    op.Issued += length;
                    if (op.Issued == op.Vector.Length)
                        FinishIssuing(op);
                    break;
                }
                case SftpOperationKind.Write:
                {
                    int length = Math.Min(RequestBytes, op.Vector.Length - op.Issued);
                    if (_writeBytesInFlight > 0 && _writeBytesInFlight + length > WriteBytesInFlight)
                        return;
                    _writeBytesInFlight += length;
                    SendWrite(Take(op, op.Offset + op.Issued, op.Issued, length));
                    op.Issued += length;
                    if (op.Issued == op.Vector.Length)
                        FinishIssuing(op);
                    break;
                }
                default:
                    SendSingle(Take(op, 0, 0, 0));
                    FinishIssuing(op);
                    break;
            }
        }
    }

    private void FinishIssuing(SftpOperation op)
    {
        _issuing.Dequeue();
        op.FullyIssued = true;
        TryComplete(op);
    }

    private int Take(SftpOperation op, long offset, int position, int length)
    {
        int index = _freeSlots.Pop();
        ref var slot = ref _slots[index];
        slot.Operation = op;
        slot.Offset = offset;
        slot.Position = position;
        slot.Length = length;
        op.Outstanding++;
        return index;
    }

    private uint RequestId(int index) => unchecked(_slots[index].Generation << 8) | (uint)index;

    private void SendRead(int index)
    {
        ref var slot = ref _slots[index];
        int at = BeginPacket(FxpRead);
        at = PutUInt32(at, RequestId(index));
        at = PutBytes(at, slot.Operation!.Handle!);
        at = PutUInt64(at, (ulong)slot.Offset);
        at = PutUInt32(at, (uint)slot.Length);
        SendPacket(at);
    }

    private void SendWrite(int index)
    {
        ref var slot = ref _slots[index];
        var op = slot.Operation!;
        int at = BeginPacket(FxpWrite);
        at = PutUInt32(at, RequestId(index));
        at = PutBytes(at, op.Handle!);
        at = PutUInt64(at, (ulong)slot.Offset);
        at = PutUInt32(at, (uint)slot.Length);
        op.Vector.Slice(slot.Position, slot.Length).CopyTo(new Span<byte>(_send + at, slot.Length));
        SendPacket(at + slot.Length);
    }

    private void SendSingle(int index)
    {
        var op = _slots[index].Operation!;
        uint id = RequestId(index);
        int at;
        switch (op.Kind)
        {
            case SftpOperationKind.Open:
                at = BeginPacket(FxpOpen);
                at = PutUInt32(at, id);
                at = PutString(at, op.Path!);
                at = PutUInt32(at, op.OpenFlags);
                if (op.Permissions is { } permissions)
                {
                    at = PutUInt32(at, AttrPermissions);
                    at = PutUInt32(at, permissions);
                }
                else
                {
                    at = PutUInt32(at, 0);
                }
                break;
            case SftpOperationKind.Close:
            case SftpOperationKind.Fstat:
                at = BeginPacket(op.Kind == SftpOperationKind.Close ? FxpClose : FxpFstat);
                at = PutUInt32(at, id);
                at = PutBytes(at, op.Handle!);
                break;
            default:
                at = BeginPacket(FxpExtended);
                at = PutUInt32(at, id);
                at = PutString(at, FsyncExtension);
                at = PutBytes(at, op.Handle!);
                break;
        }
        SendPacket(at);
    }

    /// <summary>Handles every whole reply in the receive buffer and keeps the rest.</summary>
    private void Dispatch()
    {
        int at = 0;
        while (_have - at >= 4)
        {
            uint length = BinaryPrimitives.ReadUInt32BigEndian(new ReadOnlySpan<byte>(_receive + at, 4));
            if (length < 5 || length > MaxPacket)
                throw Malformed($"a packet of {length} bytes");
            if (_have - at < 4 + length)
                break;
            Handle(_receive[at + 4], new ReadOnlySpan<byte>(_receive + at + 5, (int)length - 1));
            at += 4 + (int)length;
        }
        if (at > 0)
        {
            Buffer.MemoryCopy(_receive + at, _receive, _receiveCapacity, _have - at);
            _have -= at;
        }
    }

    private void Handle(byte type, ReadOnlySpan<byte> body)
    {
        uint id = BinaryPrimitives.ReadUInt32BigEndian(body);
        int index = (int)(id & 0xff);
        if (index >= MaxRequests || _slots[index].Operation is null || RequestId(index) != id)
            throw Malformed($"a reply to request {id}, which is not in flight");
        ref var slot = ref _slots[index];
        var op = slot.Operation!;
        var reader = new Reader(body[4..]);
        switch (type)
        {
            case FxpData when op.Kind == SftpOperationKind.Read:
            {
                var data = reader.String();
                if (data.Length > slot.Length)
                    throw Malformed($"{data.Length} bytes for a read of {slot.Length}");
                op.Vector.Slice(slot.Position, data.Length).CopyFrom(data);
                if (data.Length > 0 && data.Length < slot.Length)
                {
                    // A short read: ask for the rest on the same slot, under a new id.
                    _readBytesInFlight -= data.Length;
                    slot.Offset += data.Length;
                    slot.Position += data.Length;
                    slot.Length -= data.Length;
                    slot.Generation++;
                    SendRead(index);
                    return;
                }
                _readBytesInFlight -= slot.Length;
                if (data.Length == 0)
                    EndOfFile(op, ref slot);
                break;
            }
            case FxpStatus:
            {
                uint code = reader.UInt32();
                if (op.Kind == SftpOperationKind.Write)
                    _writeBytesInFlight -= slot.Length;
                if (op.Kind == SftpOperationKind.Read)
                {
                    _readBytesInFlight -= slot.Length;
                    if (code == StatusEof)
                        EndOfFile(op, ref slot);
                    else
                        op.Error ??= Failure(op, code, reader);
                }
                else if (code != StatusOk)
                {
                    op.Error ??= Failure(op, code, reader);
                }
                else if (op.Kind == SftpOperationKind.Open || op.Kind == SftpOperationKind.Fstat)
                {
                    throw Malformed("a bare status for an open or stat");
                }
                break;
            }
            case FxpHandle when op.Kind == SftpOperationKind.Open:
            {
                var handle = reader.String();
                if (handle.Length is 0 or > 256)
                    throw Malformed($"a handle of {handle.Length} bytes");
                op.ResultHandle = handle.ToArray();
                break;
            }
            case FxpAttrs when op.Kind == SftpOperationKind.Fstat:
            {
                uint flags = reader.UInt32();
                if ((flags & AttrSize) == 0)
                    op.Error ??= new BlockException(Errno.EIO, "ssh: the SFTP server did not say the file's size");
                else
                    op.ResultSize = (long)Math.Min(reader.UInt64(), long.MaxValue);
                break;
            }
            default:
                throw Malformed($"a reply of type {type} to a {op.Kind.ToString().ToLowerInvariant()} request");
        }
        Release(index);
        op.Outstanding--;
        TryComplete(op);
    }

    private static void EndOfFile(SftpOperation op, ref Slot slot)
    {
        // Past the end of the file the server has no bytes; QEMU's driver pads the request with zeroes.
        op.Vector.Slice(slot.Position, slot.Length).Clear();
        op.EndOfData = Math.Min(op.EndOfData, slot.Position);
    }

    private void Release(int index)
    {
        ref var slot = ref _slots[index];
        slot.Operation = null;
        slot.Generation++;
        _freeSlots.Push(index);
    }

    private static void TryComplete(SftpOperation op)
    {
        if (!op.FullyIssued || op.Outstanding > 0)
            return;
        if (op.Error is { } error)
            op.Fail(error);
        else
            op.Complete(op.Kind switch
            {
                SftpOperationKind.Read => op.EndOfData,
                SftpOperationKind.Fstat => op.ResultSize,
                _ => 0,
            });
    }

    /// <summary>A request the server refused, in QEMU's words for an open and ours for the rest.</summary>
    private static BlockException Failure(SftpOperation op, uint code, Reader reader)
    {
        string message = reader.Remaining >= 4 ? Encoding.UTF8.GetString(reader.String()) : string.Empty;
        var errno = code switch
        {
            StatusNoSuchFile => Errno.ENOENT,
            StatusPermissionDenied => Errno.EACCES,
            StatusOpUnsupported => Errno.ENOTSUP,
            _ => Errno.EIO,
        };
        // QEMU 7.2's words for the status codes, and libssh's error code (SSH_REQUEST_DENIED) that it prints beside them.
        string reason = code switch
        {
            StatusEof => "End of file",
            StatusNoSuchFile => "No such file",
            StatusPermissionDenied => "Permission denied",
            4 => "Failure",
            5 => "Bad message",
            6 => "No connection",
            7 => "Connection lost",
            StatusOpUnsupported => "Operation unsupported",
            _ => string.IsNullOrEmpty(message) ? "Unknown error" : message,
        } + $" (libssh error code: 1, sftp error code: {code})";
        return op.Kind switch
        {
            SftpOperationKind.Open => new BlockException(errno, $"failed to open remote file '{op.Path}': SFTP server: {reason}"),
            _ => new BlockException(errno == Errno.ENOENT ? Errno.EIO : errno, $"ssh: {Describe(op.Kind)} failed: SFTP server: {reason}"),
        };
    }

    private static string Describe(SftpOperationKind kind) => kind switch
    {
        SftpOperationKind.Read => "read",
        SftpOperationKind.Write => "write",
        SftpOperationKind.Fsync => "flush",
        SftpOperationKind.Fstat => "fstat",
        SftpOperationKind.Close => "close",
        _ => "open",
    };

    private BlockException Malformed(string what) =>
        new(Errno.EIO, $"ssh: the SFTP server at {_server} sent a malformed reply ({what})");

    /// <summary>Gives up on the channel: every request in flight or queued fails, and every later one.</summary>
    private void Die(BlockException error)
    {
        lock (_gate)
        {
            _dead = true;
            _deadError = error;
        }
        for (int i = 0; i < MaxRequests; i++)
        {
            if (_slots[i].Operation is { } op)
            {
                op.Error ??= error;
                op.Outstanding--;
                Release(i);
                TryComplete(op);
            }
        }
        while (_issuing.Count > 0)
        {
            var op = _issuing.Peek();
            op.Error ??= error;
            FinishIssuing(op);
        }
        while (_submitted.TryDequeue(out var op))
            op.Fail(error);
    }

    // ---- Packet writing ----

    /// <summary>Starts a packet in the send buffer: its length comes at <see cref="SendPacket"/>; returns the next offset.</summary>
    private int BeginPacket(byte type)
    {
        _send[4] = type;
        return 5;
    }

    private int PutUInt32(int at, uint value)
    {
        BinaryPrimitives.WriteUInt32BigEndian(new Span<byte>(_send + at, 4), value);
        return at + 4;
    }

    private int PutUInt64(int at, ulong value)
    {
        BinaryPrimitives.WriteUInt64BigEndian(new Span<byte>(_send + at, 8), value);
        return at + 8;
    }

    private int PutBytes(int at, ReadOnlySpan<byte> value)
    {
        at = PutUInt32(at, (uint)value.Length);
        value.CopyTo(new Span<byte>(_send + at, value.Length));
        return at + value.Length;
    }

    private int PutString(int at, string value)
    {
        int length = Encoding.UTF8.GetByteCount(value);
        if (at + 4 + length > _sendCapacity - 64)
            throw new BlockException(Errno.EINVAL, $"ssh: the path '{value}' is too long");
        at = PutUInt32(at, (uint)length);
        Encoding.UTF8.GetBytes(value, new Span<byte>(_send + at, length));
        return at + length;
    }

    private void SendPacket(int end)
    {
        BinaryPrimitives.WriteUInt32BigEndian(new Span<byte>(_send, 4), (uint)(end - 4));
        int written = LibSsh.ChannelWrite(_channel, _send, (uint)end);
        if (written != end)
            throw new BlockException(Errno.EIO, $"ssh: the connection to {_server} is lost: {LostReason(written)}");
    }

    /// <summary>Reads SSH wire fields, refusing lengths past the end (a malformed reply).</summary>
    private ref struct Reader(ReadOnlySpan<byte> data)
    {
        private ReadOnlySpan<byte> _data = data;

        public readonly int Remaining => _data.Length;

        public uint UInt32()
        {
            if (_data.Length < 4)
                throw new BlockException(Errno.EIO, "ssh: the SFTP server sent a truncated reply");
            uint value = BinaryPrimitives.ReadUInt32BigEndian(_data);
            _data = _data[4..];
            return value;
        }

        public ulong UInt64()
        {
            if (_data.Length < 8)
                throw new BlockException(Errno.EIO, "ssh: the SFTP server sent a truncated reply");
            ulong value = BinaryPrimitives.ReadUInt64BigEndian(_data);
            _data = _data[8..];
            return value;
        }

        public ReadOnlySpan<byte> String()
        {
            uint length = UInt32();
            if (length > (uint)_data.Length)
                throw new BlockException(Errno.EIO, "ssh: the SFTP server sent a truncated reply");
            var value = _data[..(int)length];
            _data = _data[(int)length..];
            return value;
        }
    }

    /// <summary>Stops the thread once nothing is in flight, then closes the channel and the session.</summary>
    public void Dispose()
    {
        if (_disposed)
            return;
        _disposed = true;
        lock (_gate)
        {
            _stopping = true;
            _deadError ??= Closed();
        }
        if (_thread != null)
        {
            Wake();
            _thread.Join();
        }
        while (_submitted.TryDequeue(out var op))
            op.Fail(_deadError!);
        if (_channel != 0)
        {
            if (!_dead)
            {
                LibSsh.ChannelSendEof(_channel);
                LibSsh.ChannelClose(_channel);
            }
            LibSsh.ChannelFree(_channel);
            _channel = 0;
        }
        if (_session != 0)
        {
            LibSsh.Disconnect(_session);
            LibSsh.Free(_session);
            _session = 0;
        }
        if (_wakeFd >= 0)
        {
            LibC.Close(_wakeFd);
            _wakeFd = -1;
        }
        NativeMemory.Free(_receive);
        NativeMemory.Free(_send);
    }
}

/// <remarks>The awaiting members live in this part, outside the unsafe context that the buffers need.</remarks>
internal sealed partial class SftpChannel
{
    /// <summary>Opens <paramref name="path"/> with SFTP open flags <paramref name="flags"/>; returns the handle.</summary>
    public async Task<byte[]> OpenAsync(string path, SftpOpenFlags flags, uint? permissions)
    {
        var op = new SftpOperation(pooled: false) { Kind = SftpOperationKind.Open, Path = path, OpenFlags = (uint)flags, Permissions = permissions };
        await Submit(op).ConfigureAwait(false);
        return op.ResultHandle!;
    }

    /// <summary>The size of the open file.</summary>
    public async Task<long> SizeAsync(byte[] handle)
    {
        var op = new SftpOperation(pooled: false) { Kind = SftpOperationKind.Fstat, Handle = handle };
        return await Submit(op).ConfigureAwait(false);
    }

    /// <summary>Closes a handle.</summary>
    public async Task CloseAsync(byte[] handle)
    {
        var op = new SftpOperation(pooled: false) { Kind = SftpOperationKind.Close, Handle = handle };
        await Submit(op).ConfigureAwait(false);
    }
}

/// <summary>SFTP version 3's open flags.</summary>
[Flags]
internal enum SftpOpenFlags : uint
{
    Read = 0x01,
    Write = 0x02,
    Create = 0x08,
    Truncate = 0x10,
}
