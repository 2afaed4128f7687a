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

    /// <summary>At most this many extents per BLOCK_STATUS reply (1 MiB of extents, QEMU's limit too).</summary>
    private const int MaxExtents = (1 << 20) / 8;

    private readonly NbdServer _server;
    private readonly Stream _socket;
    private Stream _stream;
    private PipeReader _input;
    private readonly SemaphoreSlim _sendLock = new(1, 1);
    private readonly byte[] _sendHeader = new byte[ChunkHeaderSize + 8];
    private readonly CancellationTokenSource _abort = new();
    private readonly TaskCompletionSource _completion = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly SemaphoreSlim _slots;
    private readonly int _maxInFlight;
    private NbdExport? _export;
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
        _input = CreateReader(stream);
        _maxInFlight = Math.Max(1, server.Options.MaxRequestsInFlight);
        _slots = new SemaphoreSlim(_maxInFlight, _maxInFlight);
    }

    private static PipeReader CreateReader(Stream stream) =>
        PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 64 << 10, leaveOpen: true));

    /// <summary>Whether the client finished the handshake and entered transmission (qemu-nbd's "negotiated").</summary>
    public bool Negotiated { get; private set; }

    /// <summary>Completes when the connection is closed and every request it started has finished.</summary>
    public Task Completion => _completion.Task;

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
                export.Attach(this);
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
                    export.Detach(this);
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
        await SendOptionReplyAsync(option, RepAck, default, cancellationToken).ConfigureAwait(false);
        return true;
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

    private async Task TransmitAsync(CancellationToken cancellationToken)
    {
        var header = new byte[RequestHeaderSize];
        var buffers = _export!.Backend.Graph.Buffers;
        while (true)
        {
            if (!await ReadExactAsync(header, cancellationToken).ConfigureAwait(false))
                return;
            if (!NbdRequest.TryParse(header, out var request))
                return; // bad magic: nothing after it can be trusted
            if (request.Type == CmdDisc)
                return;
            if (request.Type == CmdWrite && request.Length > MaxPayload)
            {
                // The payload cannot be skipped safely: say why, then hang up, as QEMU does.
                await SendSimpleReplyAsync(request.Cookie, EINVAL, default).ConfigureAwait(false);
                return;
            }
            await _slots.WaitAsync(cancellationToken).ConfigureAwait(false);
            AlignedBuffer? payload = null;
            if (request.Type == CmdWrite)
            {
                payload = buffers.Rent((int)request.Length);
                bool complete;
                try
                {
                    complete = await ReadExactAsync(payload.Memory[..(int)request.Length], cancellationToken).ConfigureAwait(false);
                }
                catch
                {
                    payload.Dispose();
                    _slots.Release();
                    throw;
                }
                if (!complete)
                {
                    payload.Dispose();
                    _slots.Release();
                    return;
                }
            }
            _ = ProcessAsync(request, payload);
        }
    }

    /// <summary>Runs one request and sends its reply; never throws (a failed send disconnects the client).</summary>
    private async Task ProcessAsync(NbdRequest request, AlignedBuffer? payload)
    {
        try
        {
            var export = _export!;
            uint error = Validate(request, export);
            string? message = null;
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
                        case CmdWrite:
                            await export.Backend.WriteAsync((long)request.Offset, payload!.Memory[..(int)request.Length], FuaFlag(request)).ConfigureAwait(false);
                            break;
                        case CmdCache:
                            await PrefetchAsync(request, export.Backend).ConfigureAwait(false);
                            break;
                        case CmdFlush:
                            await export.Backend.FlushAsync().ConfigureAwait(false);
                            break;
                        case CmdTrim:
                            if (request.Length > 0)
                                await export.Backend.DiscardAsync((long)request.Offset, request.Length).ConfigureAwait(false);
                            if ((request.Flags & CmdFlagFua) != 0)
                                await export.Backend.FlushAsync().ConfigureAwait(false);
                            break;
                        case CmdWriteZeroes:
                            var flags = FuaFlag(request);
                            if ((request.Flags & CmdFlagNoHole) == 0)
                                flags |= RequestFlags.MayUnmap;
                            if ((request.Flags & CmdFlagFastZero) != 0)
                                flags |= RequestFlags.NoFallback;
                            if (request.Length > 0)
                                await export.Backend.WriteZeroesAsync((long)request.Offset, request.Length, flags).ConfigureAwait(false);
                            break;
                    }
                }
                catch (BlockException e)
                {
                    error = ToNbdError(e.Errno);
                    message = e.Message;
                }
            }
            if (error != 0 && request.Type is CmdRead or CmdBlockStatus && _structured)
                await SendErrorChunkAsync(request.Cookie, error, message ?? string.Empty).ConfigureAwait(false);
            else
                await SendSimpleReplyAsync(request.Cookie, error, default).ConfigureAwait(false);
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
            _slots.Release();
        }
    }

    private static RequestFlags FuaFlag(in NbdRequest request) =>
        (request.Flags & CmdFlagFua) != 0 ? RequestFlags.Fua : RequestFlags.None;

    /// <summary>The NBD error a request gets before it runs (0 when it may run): flags, bounds, permission.</summary>
    private uint Validate(in NbdRequest request, NbdExport export)
    {
        ushort allowed = CmdFlagFua;
        switch (request.Type)
        {
            case CmdRead:
                if (_structured)
                    allowed |= CmdFlagDf;
                if (request.Length > MaxPayload)
                    return EINVAL;
                break;
            case CmdWrite:
            case CmdFlush:
            case CmdTrim:
            case CmdCache:
                break;
            case CmdWriteZeroes:
                allowed |= CmdFlagNoHole | CmdFlagFastZero;
                break;
            case CmdBlockStatus:
                allowed |= CmdFlagReqOne;
                if (!_structured || (!_baseAllocation && _bitmapContexts.Length == 0) || request.Length == 0)
                    return EINVAL;
                break;
            default:
                return EINVAL;
        }
        if ((request.Flags & ~allowed) != 0)
            return EINVAL;
        if (!export.Writable && request.Type is CmdWrite or CmdTrim or CmdWriteZeroes)
            return EPERM;
        long size = export.Backend.Length;
        if (request.Offset > (ulong)size || request.Length > size - (long)request.Offset)
            return request.Type is CmdWrite or CmdWriteZeroes ? ENOSPC : EINVAL;
        return 0;
    }

    private async ValueTask ReadAsync(NbdRequest request, BlockBackend backend)
    {
        int length = (int)request.Length;
        using var buffer = backend.Graph.Buffers.Rent(Math.Max(1, length));
        var data = buffer.Memory[..length];
        if (length > 0)
            await backend.ReadAsync((long)request.Offset, data).ConfigureAwait(false);
        await _sendLock.WaitAsync().ConfigureAwait(false);
        try
        {
            var header = _sendHeader;
            int headerLength;
            if (_structured)
            {
                headerLength = ChunkHeaderSize + 8;
                WriteChunkHeader(header, length == 0 ? ReplyTypeNone : ReplyTypeOffsetData, request.Cookie, length == 0 ? 0u : (uint)(8 + length));
                if (length == 0)
                    headerLength = ChunkHeaderSize;
                else
                    BinaryPrimitives.WriteUInt64BigEndian(header.AsSpan(ChunkHeaderSize), request.Offset);
            }
            else
            {
                headerLength = SimpleReplyHeaderSize;
                WriteSimpleHeader(header, 0, request.Cookie);
            }
            await _stream.WriteAsync(header.AsMemory(0, headerLength)).ConfigureAwait(false);
            if (length > 0)
                await _stream.WriteAsync(data).ConfigureAwait(false);
        }
        finally
        {
            _sendLock.Release();
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

    private async ValueTask SendSimpleReplyAsync(ulong cookie, uint error, ReadOnlyMemory<byte> data)
    {
        await _sendLock.WaitAsync().ConfigureAwait(false);
        try
        {
            WriteSimpleHeader(_sendHeader, error, cookie);
            await _stream.WriteAsync(_sendHeader.AsMemory(0, SimpleReplyHeaderSize)).ConfigureAwait(false);
            if (!data.IsEmpty)
                await _stream.WriteAsync(data).ConfigureAwait(false);
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
