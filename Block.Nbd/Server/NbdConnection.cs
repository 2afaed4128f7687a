using System.Buffers;
using System.Buffers.Binary;
using System.IO.Pipelines;
using System.Text;
using Block.Bitmaps;
using Block.Graph;
using Block.Io;
using Block.Nbd.Protocol;
using static Block.Nbd.Protocol.NbdProtocol;

namespace Block.Nbd.Server;

/// <summary>
/// One client of an <see cref="NbdServer"/>: the fixed newstyle handshake, then transmission with many requests in
/// flight. Requests are read one after another (a write's payload with its header) and each runs on its own; replies
/// go out whole, one at a time, in the order requests finish.
/// </summary>
internal sealed class NbdConnection
{
    /// <summary>The longest option payload accepted: a GO naming a 4 KiB export and asking for every info type
    /// fits many times over; anything longer is not a client we can serve.</summary>
    private const int MaxOptionLength = 64 << 10;

    /// <summary>READs up to this size leave with their reply header in one send.</summary>
    private const int CoalescedRead = 64 << 10;

    /// <summary>At most this many extents per BLOCK_STATUS reply (1 MiB of extents, QEMU's limit too).</summary>
    private const int MaxExtents = (1 << 20) / 8;

    private readonly NbdServer _server;
    private readonly Stream _socket;
    private Stream _stream;
    private PipeReader _input;
    private readonly SemaphoreSlim _sendLock = new(1, 1);
    private readonly byte[] _sendHeader = new byte[ChunkHeaderSize + 8];
    private readonly CancellationTokenSource _abort = new();
    private readonly CancellationToken _abortToken;
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly SemaphoreSlim _slots;
    private readonly Stack<RequestWatch> _watches = new();
    private readonly object _budgetLock = new();
    private readonly long _maxBytesInFlight;
    private long _bytesInFlight;
    private byte[] _receive = new byte[64 << 10];
    private int _receiveStart;
    private int _receiveEnd;
    private readonly int _maxInFlight;
    private NbdExport? _export;
    private NbdExport? _attachedTo;
    private bool _structured;
    private bool _noZeroes;
    private string? _metaExport;
    private bool _baseAllocation;
    private int[] _bitmapContexts = [];
    private ushort _transmissionFlags;

    public NbdConnection(NbdServer server, Stream stream)
    {
        _server = server;
        _socket = stream;
        _stream = stream;
        _abortToken = _abort.Token;
        _input = CreateReader(stream);
        _maxInFlight = Math.Max(1, server.Options.MaxRequestsInFlight);
        _slots = new SemaphoreSlim(_maxInFlight, _maxInFlight);
        _maxBytesInFlight = Math.Max(MaxPayload, server.Options.MaxBytesInFlight);
    }

    private static PipeReader CreateReader(Stream stream) =>
        PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 64 << 10, leaveOpen: true));

    /// <summary>Whether the client finished the handshake and entered transmission (qemu-nbd's "negotiated").</summary>
    public bool Negotiated { get; private set; }

    /// <summary>Completes when the connection is closed and every request it started has finished.</summary>
    public Task Completion => _completion.Task;

    /// <summary>
    /// True if the client's end of a socket connection is already closed, even with its last requests (its
    /// disconnect) still unread. The connection will finish on its own; it just has not seen the end yet.
    /// </summary>
    public bool PeerClosed
    {
        get
        {
            if (_socket is not System.Net.Sockets.NetworkStream { Socket: var socket })
                return false;
            try
            {
                return NativeSocket.HasHungUp(socket);
            }
            catch (Exception e) when (e is ObjectDisposedException or System.Net.Sockets.SocketException)
            {
                return true;
            }
        }
    }

    /// <summary>Disconnects the client (export removal, server stop); requests in flight still finish.</summary>
    public void Abort()
    {
        try
        {
            _abort.Cancel();
        }
        catch (ObjectDisposedException)
        {
            // Already closed.
        }
        _stream.Dispose();
        _socket.Dispose();
    }

    public async Task RunAsync(CancellationToken serverStop)
    {
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(serverStop, _abort.Token);
        try
        {
            bool ready;
            using (var handshake = CancellationTokenSource.CreateLinkedTokenSource(stop.Token))
            {
                handshake.CancelAfter(_server.Options.HandshakeTimeout);
                ready = await HandshakeAsync(handshake.Token).ConfigureAwait(false);
            }
            if (ready)
            {
                var export = _export!;
                try
                {
                    Negotiated = true;
                    if (_server.FindExport(export.Name) == export)
                        await TransmitAsync(stop.Token).ConfigureAwait(false);
                }
                finally
                {
                    // Every request started finishes (and its buffer goes back) before the connection counts as gone.
                    for (int i = 0; i < _maxInFlight; i++)
                        await _slots.WaitAsync(CancellationToken.None).ConfigureAwait(false);
                    DetachExport();
                }
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or ObjectDisposedException
                                      or System.Net.Sockets.SocketException or InvalidOperationException
                                      or System.Security.Authentication.AuthenticationException)
        {
            // The client went away, misbehaved, or was disconnected: its connection ends, nothing else.
        }
        finally
        {
            DetachExport();
            await _input.CompleteAsync().ConfigureAwait(false);
            await _stream.DisposeAsync().ConfigureAwait(false);
            await _socket.DisposeAsync().ConfigureAwait(false);
            _abort.Dispose();
            _completion.TrySetResult();
        }
    }

    // ---- reading ----

    /// <summary>Fills <paramref name="destination"/> from the client; false when the client closed first.</summary>
    private async ValueTask<bool> ReadExactAsync(Memory<byte> destination, CancellationToken cancellationToken)
    {
        while (destination.Length > 0)
        {
            var result = await _input.ReadAsync(cancellationToken).ConfigureAwait(false);
            var buffer = result.Buffer;
            int n = (int)Math.Min(buffer.Length, destination.Length);
            buffer.Slice(0, n).CopyTo(destination.Span);
            destination = destination[n..];
            _input.AdvanceTo(buffer.GetPosition(n));
            if (destination.Length > 0 && result.IsCompleted)
                return false;
        }
        return true;
    }

    // ---- handshake ----

    private async ValueTask<bool> HandshakeAsync(CancellationToken cancellationToken)
    {
        var greeting = new byte[18];
        BinaryPrimitives.WriteUInt64BigEndian(greeting, NbdMagic);
        BinaryPrimitives.WriteUInt64BigEndian(greeting.AsSpan(8), OptionMagic);
        BinaryPrimitives.WriteUInt16BigEndian(greeting.AsSpan(16), FlagFixedNewstyle | FlagNoZeroes);
        await _stream.WriteAsync(greeting, cancellationToken).ConfigureAwait(false);

        var word = new byte[16];
        if (!await ReadExactAsync(word.AsMemory(0, 4), cancellationToken).ConfigureAwait(false))
            return false;
        uint clientFlags = BinaryPrimitives.ReadUInt32BigEndian(word);
        if ((clientFlags & ~(uint)(FlagFixedNewstyle | FlagNoZeroes)) != 0)
            return false;
        _noZeroes = (clientFlags & FlagNoZeroes) != 0;

        while (true)
        {
            if (!await ReadExactAsync(word, cancellationToken).ConfigureAwait(false))
                return false;
            if (BinaryPrimitives.ReadUInt64BigEndian(word) != OptionMagic)
                return false;
            uint option = BinaryPrimitives.ReadUInt32BigEndian(word.AsSpan(8));
            uint length = BinaryPrimitives.ReadUInt32BigEndian(word.AsSpan(12));
            if (length > MaxOptionLength)
                return false;
            var data = new byte[length];
            if (!await ReadExactAsync(data, cancellationToken).ConfigureAwait(false))
                return false;

            if (_server.Options.Tls is { } tls && _stream == _socket)
            {
                // TLS is configured and not yet started: only STARTTLS is served, as in QEMU.
                if (option == OptExportName)
                    return false; // cannot be refused but by hanging up
                if (option != OptStartTls)
                {
                    // ABORT is refused too, and then ends the session all the same (qemu-nbd 7.2 does both).
                    await SendOptionErrorAsync(option, RepErrTlsReqd, $"Option 0x{option:x} not permitted before TLS", cancellationToken).ConfigureAwait(false);
                    if (option == OptAbort)
                        return false;
                    continue;
                }
                if (length != 0)
                {
                    await SendOptionErrorAsync(option, RepErrInvalid, "option 'starttls' has unexpected length", cancellationToken).ConfigureAwait(false);
                    return false;
                }
                await SendOptionReplyAsync(option, RepAck, default, cancellationToken).ConfigureAwait(false);
                if (!await StartTlsAsync(tls, cancellationToken).ConfigureAwait(false))
                    return false;
                continue;
            }
            switch (option)
            {
                case OptExportName:
                {
                    var export = _server.FindExport(Encoding.UTF8.GetString(data));
                    if (export is null)
                        return false; // EXPORT_NAME can only refuse by hanging up.
                    Select(export);
                    var reply = new byte[_noZeroes ? 10 : 134];
                    BinaryPrimitives.WriteUInt64BigEndian(reply, (ulong)export.Backend.Length);
                    BinaryPrimitives.WriteUInt16BigEndian(reply.AsSpan(8), _transmissionFlags);
                    AttachExport();
                    await _stream.WriteAsync(reply, cancellationToken).ConfigureAwait(false);
                    return true;
                }
                case OptAbort:
                    await SendOptionReplyAsync(option, RepAck, default, cancellationToken).ConfigureAwait(false);
                    return false;
                case OptList:
                    if (length != 0)
                    {
                        await SendOptionErrorAsync(option, RepErrInvalid, "request option 'LIST' has unexpected length", cancellationToken).ConfigureAwait(false);
                        break;
                    }
                    foreach (var export in _server.Exports)
                    {
                        var name = Encoding.UTF8.GetBytes(export.Name);
                        var description = Encoding.UTF8.GetBytes(export.Description ?? string.Empty);
                        var entry = new byte[4 + name.Length + description.Length];
                        BinaryPrimitives.WriteUInt32BigEndian(entry, (uint)name.Length);
                        name.CopyTo(entry, 4);
                        description.CopyTo(entry, 4 + name.Length);
                        await SendOptionReplyAsync(option, RepServer, entry, cancellationToken).ConfigureAwait(false);
                    }
                    await SendOptionReplyAsync(option, RepAck, default, cancellationToken).ConfigureAwait(false);
                    break;
                case OptInfo:
                case OptGo:
                    if (await InfoAsync(option, data, cancellationToken).ConfigureAwait(false) && option == OptGo)
                        return true;
                    break;
                case OptStructuredReply:
                    if (length != 0)
                        await SendOptionErrorAsync(option, RepErrInvalid, "request option 'STRUCTURED_REPLY' has unexpected length", cancellationToken).ConfigureAwait(false);
                    else if (_structured)
                        await SendOptionErrorAsync(option, RepErrInvalid, "structured reply already negotiated", cancellationToken).ConfigureAwait(false);
                    else
                    {
                        _structured = true;
                        await SendOptionReplyAsync(option, RepAck, default, cancellationToken).ConfigureAwait(false);
                    }
                    break;
                case OptListMetaContext:
                case OptSetMetaContext:
                    await MetaContextAsync(option, data, cancellationToken).ConfigureAwait(false);
                    break;
                case OptStartTls:
                    if (_server.Options.Tls != null)
                        await SendOptionErrorAsync(option, RepErrInvalid, "TLS already enabled", cancellationToken).ConfigureAwait(false);
                    else
                        await SendOptionErrorAsync(option, RepErrPolicy, "TLS not configured", cancellationToken).ConfigureAwait(false);
                    break;
                default:
                    await SendOptionErrorAsync(option, RepErrUnsup, $"Unsupported option {option}", cancellationToken).ConfigureAwait(false);
                    break;
            }
        }
    }

    /// <summary>
    /// Runs the TLS handshake after STARTTLS's ACK and moves the connection onto the encrypted stream; false when the
    /// client sent bytes past the option before the handshake (they would be read in clear) or closed.
    /// </summary>
    private async ValueTask<bool> StartTlsAsync(System.Net.Security.SslServerAuthenticationOptions tls, CancellationToken cancellationToken)
    {
        if (_input.TryRead(out var pending))
        {
            bool early = !pending.Buffer.IsEmpty;
            _input.AdvanceTo(pending.Buffer.Start);
            if (early || pending.IsCompleted)
                return false;
        }
        await _input.CompleteAsync().ConfigureAwait(false);
        var ssl = new System.Net.Security.SslStream(_socket, leaveInnerStreamOpen: true);
        _stream = ssl;
        _input = CreateReader(ssl);
        await ssl.AuthenticateAsServerAsync(tls, cancellationToken).ConfigureAwait(false);
        return true;
    }

    private void Select(NbdExport export)
    {
        _export = export;
        if (_metaExport != export.Name)
        {
            _baseAllocation = false;
            _bitmapContexts = [];
        }
        ushort flags = TxHasFlags | TxSendFlush | TxSendFua | TxSendCache;
        if (_structured)
            flags |= TxSendDf;
        flags |= export.Writable
            ? (ushort)(TxSendTrim | TxSendWriteZeroes | TxSendFastZero)
            : TxReadOnly;
        if (export.MultiConnection ?? _server.Options.MaxConnections != 1)
            flags |= TxCanMultiConn;
        _transmissionFlags = flags;
    }

    /// <summary>Answers INFO or GO; true when the export exists and was described (GO then enters transmission).</summary>
    private async ValueTask<bool> InfoAsync(uint option, byte[] data, CancellationToken cancellationToken)
    {
        if (data.Length < 6)
        {
            await SendOptionErrorAsync(option, RepErrInvalid, "request option has invalid length", cancellationToken).ConfigureAwait(false);
            return false;
        }
        uint nameLength = BinaryPrimitives.ReadUInt32BigEndian(data);
        if (nameLength > MaxString || nameLength > data.Length - 6)
        {
            await SendOptionErrorAsync(option, RepErrInvalid, "export name length is invalid", cancellationToken).ConfigureAwait(false);
            return false;
        }
        string name = Encoding.UTF8.GetString(data, 4, (int)nameLength);
        int at = 4 + (int)nameLength;
        int requests = BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(at));
        at += 2;
        if (data.Length - at != requests * 2)
        {
            await SendOptionErrorAsync(option, RepErrInvalid, "request option has invalid length", cancellationToken).ConfigureAwait(false);
            return false;
        }
        bool wantName = false, wantDescription = false;
        for (int i = 0; i < requests; i++)
        {
            switch (BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(at + 2 * i)))
            {
                case InfoName: wantName = true; break;
                case InfoDescription: wantDescription = true; break;
            }
        }
        var export = _server.FindExport(name);
        if (export is null)
        {
            await SendOptionErrorAsync(option, RepErrUnknown, $"export '{name}' not present", cancellationToken).ConfigureAwait(false);
            return false;
        }
        if (wantName)
            await SendInfoStringAsync(option, InfoName, export.Name, cancellationToken).ConfigureAwait(false);
        if (wantDescription && export.Description != null)
            await SendInfoStringAsync(option, InfoDescription, export.Description, cancellationToken).ConfigureAwait(false);

        var blockSize = new byte[14];
        BinaryPrimitives.WriteUInt16BigEndian(blockSize, InfoBlockSize);
        int alignment = Math.Max(1, export.Backend.Root?.Limits.RequestAlignment ?? 1);
        BinaryPrimitives.WriteUInt32BigEndian(blockSize.AsSpan(2), (uint)alignment);
        BinaryPrimitives.WriteUInt32BigEndian(blockSize.AsSpan(6), (uint)Math.Max(4096, alignment));
        BinaryPrimitives.WriteUInt32BigEndian(blockSize.AsSpan(10), MaxPayload);
        await SendOptionReplyAsync(option, RepInfo, blockSize, cancellationToken).ConfigureAwait(false);

        var previous = (_export, _transmissionFlags, _baseAllocation, _bitmapContexts);
        Select(export);
        var info = new byte[12];
        BinaryPrimitives.WriteUInt16BigEndian(info, InfoExport);
        BinaryPrimitives.WriteUInt64BigEndian(info.AsSpan(2), (ulong)export.Backend.Length);
        BinaryPrimitives.WriteUInt16BigEndian(info.AsSpan(10), _transmissionFlags);
        if (option == OptInfo)
            (_export, _transmissionFlags, _baseAllocation, _bitmapContexts) = previous;
        await SendOptionReplyAsync(option, RepInfo, info, cancellationToken).ConfigureAwait(false);
        if (option == OptGo)
            AttachExport();
        await SendOptionReplyAsync(option, RepAck, default, cancellationToken).ConfigureAwait(false);
        return true;
    }

    // The client counts as the export's before it hears the last reply of its handshake: a safe removal made once the
    // client has negotiated must see it, as in QEMU (whose single event loop can't run a QMP command in between).
    private void AttachExport()
    {
        _attachedTo = _export;
        _attachedTo!.Attach(this);
    }

    private void DetachExport()
    {
        _attachedTo?.Detach(this);
        _attachedTo = null;
    }

    private ValueTask SendInfoStringAsync(uint option, ushort type, string text, CancellationToken cancellationToken)
    {
        var bytes = Encoding.UTF8.GetBytes(text);
        var payload = new byte[2 + bytes.Length];
        BinaryPrimitives.WriteUInt16BigEndian(payload, type);
        bytes.CopyTo(payload, 2);
        return SendOptionReplyAsync(option, RepInfo, payload, cancellationToken);
    }

    private async ValueTask MetaContextAsync(uint option, byte[] data, CancellationToken cancellationToken)
    {
        string optionName = option == OptSetMetaContext ? "SET_META_CONTEXT" : "LIST_META_CONTEXT";
        if (option == OptSetMetaContext && !_structured)
        {
            await SendOptionErrorAsync(option, RepErrInvalid, $"request option '{optionName}' when structured reply is not negotiated", cancellationToken).ConfigureAwait(false);
            return;
        }
        if (!TryParseMetaContext(data, out string exportName, out var queries))
        {
            await SendOptionErrorAsync(option, RepErrInvalid, $"request option '{optionName}' has invalid length", cancellationToken).ConfigureAwait(false);
            return;
        }
        var export = _server.FindExport(exportName);
        if (export is null)
        {
            await SendOptionErrorAsync(option, RepErrUnknown, $"export '{exportName}' not present", cancellationToken).ConfigureAwait(false);
            return;
        }
        // Queries select contexts; the replies then go out in one fixed order (base:allocation, then the bitmaps in
        // the export's order), each context once, as QEMU answers. LIST also takes the namespace-wide "base:",
        // "qemu:" and "qemu:dirty-bitmap:", and with no query lists everything.
        bool list = option == OptListMetaContext;
        bool baseAllocation = list && queries.Count == 0;
        var bitmaps = new bool[export.Bitmaps.Count];
        if (list && queries.Count == 0)
            Array.Fill(bitmaps, true);
        foreach (string query in queries)
        {
            if (query == BaseAllocation || (list && query == "base:"))
                baseAllocation = true;
            else if (list && query is "qemu:" or DirtyBitmapPrefix)
                Array.Fill(bitmaps, true);
            else if (query.StartsWith(DirtyBitmapPrefix, StringComparison.Ordinal))
            {
                for (int i = 0; i < bitmaps.Length; i++)
                    bitmaps[i] |= export.Bitmaps[i].Name == query[DirtyBitmapPrefix.Length..];
            }
        }
        if (baseAllocation)
            await SendMetaContextAsync(option, BaseAllocationContextId, BaseAllocation, cancellationToken).ConfigureAwait(false);
        var selected = new List<int>();
        for (int i = 0; i < bitmaps.Length; i++)
        {
            if (!bitmaps[i])
                continue;
            selected.Add(i);
            await SendMetaContextAsync(option, BitmapContextId(i), DirtyBitmapPrefix + export.Bitmaps[i].Name, cancellationToken).ConfigureAwait(false);
        }
        if (option == OptSetMetaContext)
        {
            _metaExport = exportName;
            _baseAllocation = baseAllocation;
            _bitmapContexts = [.. selected];
        }
        await SendOptionReplyAsync(option, RepAck, default, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The context id of <c>base:allocation</c> (QEMU's numbering: 0, then 1 for allocation depth, then bitmaps).</summary>
    private const uint BaseAllocationContextId = 0;

    /// <summary>The prefix of the dirty-bitmap contexts.</summary>
    private const string DirtyBitmapPrefix = "qemu:dirty-bitmap:";

    /// <summary>The context id of the export's bitmap <paramref name="index"/>.</summary>
    private static uint BitmapContextId(int index) => 2 + (uint)index;

    private ValueTask SendMetaContextAsync(uint option, uint id, string name, CancellationToken cancellationToken)
    {
        var bytes = Encoding.UTF8.GetBytes(name);
        var payload = new byte[4 + bytes.Length];
        BinaryPrimitives.WriteUInt32BigEndian(payload, id);
        bytes.CopyTo(payload, 4);
        return SendOptionReplyAsync(option, RepMetaContext, payload, cancellationToken);
    }

    /// <summary>Parses a LIST/SET_META_CONTEXT payload: export name, then counted queries, every length checked.</summary>
    internal static bool TryParseMetaContext(ReadOnlySpan<byte> data, out string exportName, out List<string> queries)
    {
        exportName = string.Empty;
        queries = [];
        if (data.Length < 8)
            return false;
        uint nameLength = BinaryPrimitives.ReadUInt32BigEndian(data);
        if (nameLength > MaxString || nameLength > data.Length - 8)
            return false;
        exportName = Encoding.UTF8.GetString(data.Slice(4, (int)nameLength));
        data = data[(4 + (int)nameLength)..];
        uint count = BinaryPrimitives.ReadUInt32BigEndian(data);
        data = data[4..];
        for (uint i = 0; i < count; i++)
        {
            if (data.Length < 4)
                return false;
            uint queryLength = BinaryPrimitives.ReadUInt32BigEndian(data);
            if (queryLength > MaxString || queryLength > data.Length - 4)
                return false;
            queries.Add(Encoding.UTF8.GetString(data.Slice(4, (int)queryLength)));
            data = data[(4 + (int)queryLength)..];
        }
        return data.IsEmpty;
    }

    private ValueTask SendOptionErrorAsync(uint option, uint type, string message, CancellationToken cancellationToken) =>
        SendOptionReplyAsync(option, type, Encoding.UTF8.GetBytes(message), cancellationToken);

    private async ValueTask SendOptionReplyAsync(uint option, uint type, ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        var header = new byte[20];
        BinaryPrimitives.WriteUInt64BigEndian(header, OptionReplyMagic);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(8), option);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(12), type);
        BinaryPrimitives.WriteUInt32BigEndian(header.AsSpan(16), (uint)data.Length);
        await _stream.WriteAsync(header, cancellationToken).ConfigureAwait(false);
        if (!data.IsEmpty)
            await _stream.WriteAsync(data, cancellationToken).ConfigureAwait(false);
    }

    // ---- transmission ----

    /// <summary>
    /// Transmission: a dedicated thread reads requests with blocking reads (the kernel wakes it directly, where an
    /// async socket read wakes the epoll thread, which then wakes a pool thread) and starts each request on itself.
    /// A request that completes at once (a read from the page cache) is answered before the next is read; one that
    /// waits (the disk, a worker) finishes where it completes, while the thread reads on.
    /// </summary>
    private async Task TransmitAsync(CancellationToken cancellationToken)
    {
        // What the handshake's reader buffered past GO (a client that pipelines its first requests) is read first.
        if (_input.TryRead(out var pending))
        {
            var buffered = pending.Buffer;
            if (buffered.Length > _receive.Length)
                _receive = new byte[buffered.Length];
            buffered.CopyTo(_receive);
            _receiveEnd = (int)buffered.Length;
            _input.AdvanceTo(buffered.End);
        }
        await _input.CompleteAsync().ConfigureAwait(false);
        var finished = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var registration = cancellationToken.Register(static s => ((NbdConnection)s!).Abort(), this);
        var thread = new Thread(() =>
        {
            try
            {
                ReceiveRequests(cancellationToken);
                finished.SetResult();
            }
            catch (Exception e)
            {
                finished.SetException(e);
            }
        })
        {
            IsBackground = true,
            Name = "nbd-connection",
        };
        thread.UnsafeStart();
        await finished.Task.ConfigureAwait(false);
    }

    /// <summary>The transmission thread's loop: until the client disconnects, sends garbage, or is aborted.</summary>
    private void ReceiveRequests(CancellationToken cancellationToken)
    {
        Span<byte> header = stackalloc byte[RequestHeaderSize];
        var buffers = _export!.Backend.Graph.Buffers;
        using var wake = cancellationToken.Register(static s => ((NbdConnection)s!).WakeBudgetWaiter(), this);
        while (true)
        {
            if (!ReceiveExact(header))
                return;
            if (!NbdRequest.TryParse(header, out var request))
                return; // bad magic: nothing after it can be trusted
            if (request.Type == CmdDisc)
                return;
            if (request.Type == CmdWrite && request.Length > MaxPayload)
            {
                // The payload cannot be skipped safely: say why, then hang up, as qemu-nbd 7.2 does.
                var refusal = _structured
                    ? SendErrorChunkAsync(request.Cookie, EINVAL, $"len ({request.Length} ) is larger than max len ({MaxPayload})")
                    : SendSimpleReplyAsync(request.Cookie, EINVAL);
                refusal.AsTask().GetAwaiter().GetResult();
                return;
            }
            _slots.Wait(cancellationToken);
            try
            {
                ReserveBytes(PayloadBytes(request), cancellationToken);
            }
            catch
            {
                _slots.Release();
                throw;
            }
            AlignedBuffer? payload = null;
            if (request.Type == CmdWrite)
            {
                payload = buffers.Rent((int)request.Length);
                bool complete;
                try
                {
                    complete = ReceiveExact(payload.Memory.Span[..(int)request.Length]);
                }
                catch
                {
                    payload.Dispose();
                    ReleaseBytes(PayloadBytes(request));
                    _slots.Release();
                    throw;
                }
                if (!complete)
                {
                    payload.Dispose();
                    ReleaseBytes(PayloadBytes(request));
                    _slots.Release();
                    return;
                }
            }
            Start(request, payload);
        }
    }

    /// <summary>Fills <paramref name="destination"/> from the client, blocking; false when the client closed first.</summary>
    private bool ReceiveExact(Span<byte> destination)
    {
        int buffered = Math.Min(_receiveEnd - _receiveStart, destination.Length);
        _receive.AsSpan(_receiveStart, buffered).CopyTo(destination);
        _receiveStart += buffered;
        destination = destination[buffered..];
        while (!destination.IsEmpty)
        {
            if (destination.Length >= _receive.Length)
            {
                // A large payload goes straight from the socket into its buffer.
                int n = Receive(destination);
                if (n == 0)
                    return false;
                destination = destination[n..];
                continue;
            }
            _receiveStart = 0;
            _receiveEnd = Receive(_receive);
            if (_receiveEnd == 0)
                return false;
            int take = Math.Min(_receiveEnd, destination.Length);
            _receive.AsSpan(0, take).CopyTo(destination);
            _receiveStart = take;
            destination = destination[take..];
        }
        return true;
    }

    // A plain socket is read through its descriptor, which allocates nothing while it waits; TLS reads its stream.
    private int Receive(Span<byte> destination) =>
        _stream == _socket && _socket is System.Net.Sockets.NetworkStream { Socket: var socket }
            ? NativeSocket.Receive(socket, destination, _abortToken)
            : _stream.Read(destination);

    /// <summary>
    /// Runs one request: to the end when it completes at once, else it goes on where it completes and a pooled
    /// <see cref="RequestWatch"/> collects it. A write, write-zeroes or flush is issued here and watched itself, so
    /// that what runs after it (the reply) starts on the thread it completes on and completes there, with nothing to
    /// box: a request issued on this thread and finished on an I/O worker would otherwise rent its state machine from
    /// this thread's pool cache and give it back to the worker's, and this thread's would stay empty.
    /// </summary>
    private void Start(NbdRequest request, AlignedBuffer? payload)
    {
        var export = _export!;
        uint error = Validate(request, export, out string? message);
        ValueTask issued = default;
        if (error == 0 && request.Type is CmdWrite or CmdWriteZeroes or CmdFlush)
        {
            issued = Issue(request, export.Backend, payload);
            if (!issued.IsCompleted)
            {
                RentWatch().WatchIssued(issued, request, payload);
                return;
            }
        }
        Finish(ProcessAsync(request, payload, issued, error, message));
    }

    /// <summary>Ends a request's processing: at once if it is done, else when it is.</summary>
    private void Finish(ValueTask running)
    {
        if (running.IsCompleted)
            running.GetAwaiter().GetResult();
        else
            RentWatch().Watch(running);
    }

    private RequestWatch RentWatch()
    {
        RequestWatch? watch;
        lock (_watches)
            watch = _watches.Count > 0 ? _watches.Pop() : null;
        return watch ?? new RequestWatch(this);
    }

    /// <summary>Issues a write, write-zeroes or flush to the export's backend; never throws.</summary>
    private static ValueTask Issue(in NbdRequest request, BlockBackend backend, AlignedBuffer? payload)
    {
        try
        {
            switch (request.Type)
            {
                case CmdWrite:
                    return backend.WriteAsync((long)request.Offset, payload!.Memory[..(int)request.Length], FuaFlag(request));
                case CmdWriteZeroes:
                    var flags = FuaFlag(request);
                    if ((request.Flags & CmdFlagNoHole) == 0)
                        flags |= RequestFlags.MayUnmap;
                    if ((request.Flags & CmdFlagFastZero) != 0)
                        flags |= RequestFlags.NoFallback;
                    return request.Length > 0 ? backend.WriteZeroesAsync((long)request.Offset, request.Length, flags) : default;
                default:
                    return backend.FlushAsync();
            }
        }
        catch (Exception e)
        {
            return ValueTask.FromException(e);
        }
    }

    /// <summary>
    /// Collects a request that finishes on another thread: either its whole processing, or the backend call
    /// <see cref="Start"/> issued, whose reply then runs where that call completed. One per request in flight, reused.
    /// </summary>
    private sealed class RequestWatch
    {
        private readonly NbdConnection _owner;
        private readonly Action _finished;
        private readonly Action _issuedCompleted;
        private ValueTask _running;
        private NbdRequest _request;
        private AlignedBuffer? _payload;

        public RequestWatch(NbdConnection owner)
        {
            _owner = owner;
            _finished = Finished;
            _issuedCompleted = IssuedCompleted;
        }

        public void Watch(ValueTask running)
        {
            _running = running;
            running.ConfigureAwait(false).GetAwaiter().UnsafeOnCompleted(_finished);
        }

        public void WatchIssued(ValueTask issued, NbdRequest request, AlignedBuffer? payload)
        {
            _running = issued;
            _request = request;
            _payload = payload;
            issued.ConfigureAwait(false).GetAwaiter().UnsafeOnCompleted(_issuedCompleted);
        }

        private void Finished()
        {
            var running = _running;
            _running = default;
            running.GetAwaiter().GetResult();
            Return();
        }

        private void IssuedCompleted()
        {
            var (issued, request, payload) = (_running, _request, _payload);
            (_running, _request, _payload) = (default, default, null);
            Return();
            _owner.Finish(_owner.ProcessAsync(request, payload, issued, 0, null));
        }

        private void Return()
        {
            lock (_owner._watches)
                _owner._watches.Push(this);
        }
    }

    /// <summary>
    /// Runs one request and sends its reply; never throws (a failed send disconnects the client). A write,
    /// write-zeroes or flush comes already issued (<paramref name="issued"/>, completed); <paramref name="error"/> and
    /// <paramref name="message"/> are what validation found.
    /// </summary>
    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ProcessAsync(NbdRequest request, AlignedBuffer? payload, ValueTask issued, uint error, string? message)
    {
        try
        {
            var export = _export!;
            if (error == 0)
            {
                try
                {
                    switch (request.Type)
                    {
                        case CmdRead:
                            await ReadAsync(request, export.Backend).ConfigureAwait(false);
                            return;
                        case CmdBlockStatus:
                            await BlockStatusAsync(request, export).ConfigureAwait(false);
                            return;
                        case CmdWrite or CmdWriteZeroes or CmdFlush:
                            await issued.ConfigureAwait(false);
                            break;
                        case CmdCache:
                            await PrefetchAsync(request, export.Backend).ConfigureAwait(false);
                            break;
                        case CmdTrim:
                            if (request.Length > 0)
                                await export.Backend.DiscardAsync((long)request.Offset, request.Length).ConfigureAwait(false);
                            if ((request.Flags & CmdFlagFua) != 0)
                                await export.Backend.FlushAsync().ConfigureAwait(false);
                            break;
                    }
                }
                catch (BlockException e)
                {
                    error = ToNbdError(e.Errno);
                    message = e.Message;
                }
            }
            // Every error is an ERROR chunk once structured replies are on, as qemu-nbd 7.2 sends it.
            if (error != 0 && _structured)
                await SendErrorChunkAsync(request.Cookie, error, message ?? string.Empty).ConfigureAwait(false);
            else
                await SendSimpleReplyAsync(request.Cookie, error).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or OperationCanceledException or System.Net.Sockets.SocketException)
        {
            Abort();
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // A bug in serving this request: the client cannot be told what state it left, so hang up.
            _server.ReportFailure(e);
            Abort();
        }
        finally
        {
            payload?.Dispose();
            ReleaseBytes(PayloadBytes(request));
            _slots.Release();
        }
    }

    /// <summary>The buffer bytes <paramref name="request"/> holds while in flight (reads over the limit hold none: they are refused).</summary>
    private static long PayloadBytes(in NbdRequest request) =>
        request.Type is CmdRead or CmdWrite && request.Length <= MaxPayload ? request.Length : 0;

    /// <summary>
    /// Waits, on the transmission thread, until <paramref name="bytes"/> more fit under
    /// <see cref="NbdServerOptions.MaxBytesInFlight"/> (one request always fits when none is in flight), so that a
    /// client that sends faster than its requests complete stops being read rather than growing the server's memory.
    /// </summary>
    private void ReserveBytes(long bytes, CancellationToken cancellationToken)
    {
        if (bytes == 0)
            return;
        lock (_budgetLock)
        {
            while (_bytesInFlight > 0 && _bytesInFlight + bytes > _maxBytesInFlight)
            {
                cancellationToken.ThrowIfCancellationRequested();
                Monitor.Wait(_budgetLock);
            }
            _bytesInFlight += bytes;
            _server.NotePeakBytesInFlight(_bytesInFlight);
        }
    }

    private void ReleaseBytes(long bytes)
    {
        if (bytes == 0)
            return;
        lock (_budgetLock)
        {
            _bytesInFlight -= bytes;
            Monitor.PulseAll(_budgetLock);
        }
    }

    private void WakeBudgetWaiter()
    {
        lock (_budgetLock)
            Monitor.PulseAll(_budgetLock);
    }

    private static RequestFlags FuaFlag(in NbdRequest request) =>
        (request.Flags & CmdFlagFua) != 0 ? RequestFlags.Fua : RequestFlags.None;

    /// <summary>
    /// The NBD error a request gets before it runs (0 when it may run) and its message: size, permission, bounds,
    /// flags, command, in qemu-nbd 7.2's order and words. Like 7.2 every one is EINVAL (the spec suggests EPERM for a
    /// read-only export and ENOSPC for a write past the end; 7.2 sends neither, checked with a raw client).
    /// </summary>
    private uint Validate(in NbdRequest request, NbdExport export, out string? message)
    {
        message = null;
        if (request.Type is CmdRead or CmdWrite && request.Length > MaxPayload)
            message = $"len ({request.Length} ) is larger than max len ({MaxPayload})";
        else if (!export.Writable && request.Type is CmdWrite or CmdTrim or CmdWriteZeroes)
            message = "Export is read-only";
        else if (request.Offset > (ulong)export.Backend.Length || request.Length > export.Backend.Length - (long)request.Offset)
            message = $"operation past EOF; From: {request.Offset}, Len: {request.Length}, Size: {export.Backend.Length}";
        else if (request.Type > CmdBlockStatus || request.Type == CmdDisc)
            message = $"invalid request type ({request.Type}) received";
        else if ((request.Flags & ~AllowedFlags(request.Type)) != 0)
            message = $"unsupported flags for command {CommandName(request.Type)} (got 0x{request.Flags:x})";
        else if (request.Type == CmdBlockStatus && (!_baseAllocation && _bitmapContexts.Length == 0))
            message = "CMD_BLOCK_STATUS not negotiated";
        else if (request.Type == CmdBlockStatus && request.Length == 0)
            message = "need non-zero length";
        return message is null ? 0 : EINVAL;
    }

    /// <summary>The command flags <paramref name="type"/> takes on this connection.</summary>
    private ushort AllowedFlags(ushort type) => type switch
    {
        CmdRead => _structured ? (ushort)(CmdFlagFua | CmdFlagDf) : CmdFlagFua,
        CmdWriteZeroes => CmdFlagFua | CmdFlagNoHole | CmdFlagFastZero,
        CmdBlockStatus => CmdFlagFua | CmdFlagReqOne,
        _ => CmdFlagFua,
    };

    /// <summary>QEMU's name of a command, as its messages print it.</summary>
    private static string CommandName(ushort type) => type switch
    {
        CmdRead => "read",
        CmdWrite => "write",
        CmdFlush => "flush",
        CmdTrim => "trim",
        CmdCache => "cache",
        CmdWriteZeroes => "write zeroes",
        CmdBlockStatus => "block status",
        _ => "unknown",
    };

    /// <summary>
    /// READ: the data is read into a pooled buffer behind room for the reply header, so that a read up to
    /// <see cref="CoalescedRead"/> goes out in one send (one system call and one wake-up of the client, not two).
    /// </summary>
    private async ValueTask ReadAsync(NbdRequest request, BlockBackend backend)
    {
        int length = (int)request.Length;
        // The data starts on a 4 KiB boundary (O_DIRECT needs it); the header goes just before it.
        int room = length <= CoalescedRead ? AlignedBufferPool.DefaultAlignment : 0;
        using var buffer = backend.Graph.Buffers.Rent(Math.Max(1, room + length));
        var data = buffer.Memory.Slice(room, length);
        if (length > 0)
            await backend.ReadAsync((long)request.Offset, data).ConfigureAwait(false);
        int headerLength = !_structured ? SimpleReplyHeaderSize : length == 0 ? ChunkHeaderSize : ChunkHeaderSize + 8;
        await _sendLock.WaitAsync().ConfigureAwait(false);
        try
        {
            WriteReadHeader(room > 0 ? buffer.Memory.Span.Slice(room - headerLength, headerLength) : _sendHeader.AsSpan(0, headerLength), request);
            if (room > 0)
            {
                await _stream.WriteAsync(buffer.Memory.Slice(room - headerLength, headerLength + length)).ConfigureAwait(false);
            }
            else
            {
                await _stream.WriteAsync(_sendHeader.AsMemory(0, headerLength)).ConfigureAwait(false);
                await _stream.WriteAsync(data).ConfigureAwait(false);
            }
        }
        finally
        {
            _sendLock.Release();
        }
    }

    private void WriteReadHeader(Span<byte> header, in NbdRequest request)
    {
        if (!_structured)
            WriteSimpleHeader(header, 0, request.Cookie);
        else if (request.Length == 0)
            WriteChunkHeader(header, ReplyTypeNone, request.Cookie, 0);
        else
        {
            WriteChunkHeader(header, ReplyTypeOffsetData, request.Cookie, 8 + request.Length);
            BinaryPrimitives.WriteUInt64BigEndian(header[ChunkHeaderSize..], request.Offset);
        }
    }

    /// <summary>
    /// CACHE: reads the range through the graph and drops the data, so that what lies under it (the host page cache,
    /// qcow2's L2 cache) holds it for the reads the client announced; 1 MiB at a time, so a 4 GiB request costs
    /// 1 MiB of memory.
    /// </summary>
    private static async ValueTask PrefetchAsync(NbdRequest request, BlockBackend backend)
    {
        const int Chunk = 1 << 20;
        using var buffer = backend.Graph.Buffers.Rent(Chunk);
        long position = (long)request.Offset;
        long end = position + request.Length;
        while (position < end)
        {
            int bytes = (int)Math.Min(Chunk, end - position);
            await backend.ReadAsync(position, buffer.Memory[..bytes]).ConfigureAwait(false);
            position += bytes;
        }
    }

    /// <summary>BLOCK_STATUS: one chunk per selected context (base:allocation first, then the bitmaps), the last one done.</summary>
    private async ValueTask BlockStatusAsync(NbdRequest request, NbdExport export)
    {
        int maxExtents = (request.Flags & CmdFlagReqOne) != 0 ? 1 : MaxExtents;
        var chunks = new List<byte[]>(1 + _bitmapContexts.Length);
        if (_baseAllocation)
            chunks.Add(await AllocationExtentsAsync(request, export.Backend, maxExtents).ConfigureAwait(false));
        foreach (int index in _bitmapContexts)
            chunks.Add(BitmapExtents(request, export.Bitmaps[index], BitmapContextId(index), maxExtents));
        await _sendLock.WaitAsync().ConfigureAwait(false);
        try
        {
            for (int i = 0; i < chunks.Count; i++)
            {
                WriteChunkHeader(_sendHeader, ReplyTypeBlockStatus, request.Cookie, (uint)chunks[i].Length, done: i == chunks.Count - 1);
                await _stream.WriteAsync(_sendHeader.AsMemory(0, ChunkHeaderSize)).ConfigureAwait(false);
                await _stream.WriteAsync(chunks[i]).ConfigureAwait(false);
            }
        }
        finally
        {
            _sendLock.Release();
        }
    }

    /// <summary>The <c>base:allocation</c> payload: context id, then extents with the hole and zero flags.</summary>
    private static async ValueTask<byte[]> AllocationExtentsAsync(NbdRequest request, BlockBackend backend, int maxExtents)
    {
        var root = backend.Root ?? throw new BlockException(Errno.ENOMEDIUM, "No medium found");
        var extents = new List<(uint Length, uint Flags)>();
        long position = (long)request.Offset;
        long end = position + request.Length;
        while (position < end)
        {
            var (status, _) = await root.GetBlockStatusAboveAsync(position, end - position).ConfigureAwait(false);
            long bytes = Math.Min(status.Bytes, end - position);
            if (bytes <= 0)
                break;
            uint flags = (status.Has(BlockStatusFlags.Data) ? 0 : StateHole) | (status.Has(BlockStatusFlags.Zero) ? StateZero : 0);
            if (extents.Count > 0 && extents[^1].Flags == flags)
                extents[^1] = (extents[^1].Length + (uint)bytes, flags);
            else if (extents.Count == maxExtents)
                break;
            else
                extents.Add(((uint)bytes, flags));
            position += bytes;
        }
        return ExtentPayload(BaseAllocationContextId, extents);
    }

    /// <summary>A <c>qemu:dirty-bitmap:NAME</c> payload: runs of dirty (flag 1) and clean (0) bytes over the request.</summary>
    private static byte[] BitmapExtents(NbdRequest request, DirtyBitmap bitmap, uint contextId, int maxExtents)
    {
        var extents = new List<(uint Length, uint Flags)>();
        long position = (long)request.Offset;
        long end = position + request.Length;
        while (position < end && extents.Count < maxExtents)
        {
            bool dirty = bitmap.IsDirty(position);
            long next = dirty ? bitmap.NextClean(position) : bitmap.NextDirty(position);
            if (next <= position || next > end)
                next = end;
            extents.Add(((uint)(next - position), dirty ? StateDirty : 0));
            position = next;
        }
        return ExtentPayload(contextId, extents);
    }

    private static byte[] ExtentPayload(uint contextId, List<(uint Length, uint Flags)> extents)
    {
        var payload = new byte[4 + 8 * extents.Count];
        BinaryPrimitives.WriteUInt32BigEndian(payload, contextId);
        for (int i = 0; i < extents.Count; i++)
        {
            BinaryPrimitives.WriteUInt32BigEndian(payload.AsSpan(4 + 8 * i), extents[i].Length);
            BinaryPrimitives.WriteUInt32BigEndian(payload.AsSpan(8 + 8 * i), extents[i].Flags);
        }
        return payload;
    }

    private async ValueTask SendSimpleReplyAsync(ulong cookie, uint error)
    {
        await _sendLock.WaitAsync().ConfigureAwait(false);
        try
        {
            WriteSimpleHeader(_sendHeader, error, cookie);
            await _stream.WriteAsync(_sendHeader.AsMemory(0, SimpleReplyHeaderSize)).ConfigureAwait(false);
        }
        finally
        {
            _sendLock.Release();
        }
    }

    private async ValueTask SendErrorChunkAsync(ulong cookie, uint error, string message)
    {
        var text = Encoding.UTF8.GetBytes(message.Length > 1024 ? message[..1024] : message);
        var payload = new byte[6 + text.Length];
        BinaryPrimitives.WriteUInt32BigEndian(payload, error);
        BinaryPrimitives.WriteUInt16BigEndian(payload.AsSpan(4), (ushort)text.Length);
        text.CopyTo(payload, 6);
        await _sendLock.WaitAsync().ConfigureAwait(false);
        try
        {
            WriteChunkHeader(_sendHeader, ReplyTypeError, cookie, (uint)payload.Length);
            await _stream.WriteAsync(_sendHeader.AsMemory(0, ChunkHeaderSize)).ConfigureAwait(false);
            await _stream.WriteAsync(payload).ConfigureAwait(false);
        }
        finally
        {
            _sendLock.Release();
        }
    }

    private static void WriteSimpleHeader(Span<byte> header, uint error, ulong cookie)
    {
        BinaryPrimitives.WriteUInt32BigEndian(header, SimpleReplyMagic);
        BinaryPrimitives.WriteUInt32BigEndian(header[4..], error);
        BinaryPrimitives.WriteUInt64BigEndian(header[8..], cookie);
    }

    private static void WriteChunkHeader(Span<byte> header, ushort type, ulong cookie, uint length, bool done = true)
    {
        BinaryPrimitives.WriteUInt32BigEndian(header, StructuredReplyMagic);
        BinaryPrimitives.WriteUInt16BigEndian(header[4..], done ? ReplyFlagDone : (ushort)0);
        BinaryPrimitives.WriteUInt16BigEndian(header[6..], type);
        BinaryPrimitives.WriteUInt64BigEndian(header[8..], cookie);
        BinaryPrimitives.WriteUInt32BigEndian(header[16..], length);
    }
}
