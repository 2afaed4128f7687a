using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using System.Text;
using Block.Io;
using Block.Nbd.Protocol;

namespace Block.Nbd.Client;

/// <summary>
/// One NBD connection in transmission: many requests in flight, matched to their replies by cookie. A receive loop
/// reads every reply (simple or structured) and completes the request it names; READ data goes straight from the
/// socket into the caller's buffers.
/// </summary>
/// <remarks>
/// <para>Per-request state lives in a fixed set of slots (<see cref="NbdClientOptions.MaxInFlight"/>, 16 as in
/// QEMU), each a reusable <c>IValueTaskSource</c>, and the request methods use pooled async builders, so a request
/// allocates nothing once the connection is up.</para>
/// <para>A server that breaks the protocol (an unknown cookie, a chunk outside its request, a reply too large, a
/// truncated message, a closed connection) kills the connection: every request in flight fails with EIO and the
/// message says what was wrong; later requests fail at once with EIO. A server's error for one request (an error
/// reply or chunk) fails that request only, with the errno the server sent.</para>
/// </remarks>
public sealed class NbdClient : IAsyncDisposable
{
    /// <summary>Writes up to this size go out in one send with their header.</summary>
    private const int CoalescedWrite = 64 << 10;

    /// <summary>
    /// Reads and writes larger than this go out as requests of this size, all in flight at once.
    /// </summary>
    /// <remarks>
    /// qemu-nbd 7.2 allocates a fresh aligned buffer for every request, and glibc serves an allocation of 128 KiB and
    /// more (its mmap threshold) with freshly mapped memory, so such a request costs the server a page fault on every
    /// 4 KiB it sends. <c>blk convert</c> from qemu-nbd reads 2 MiB chunks: sent whole, they cost qemu-nbd 4.2-4.6 s of
    /// CPU per GiB (<c>/proc/PID/stat</c>) and the convert ran at qemu-img's speed (0.97x); in 64 KiB parts, 1.9-2.6 s,
    /// and the convert took half qemu-img's time (bench/README.md). 128 KiB parts, just over the threshold, were worst
    /// (10 s of CPU: every request mapped).
    /// </remarks>
    internal const int PartSize = 64 << 10;

    /// <summary>The largest non-data chunk we take (a BLOCK_STATUS with many extents); larger is a protocol error.</summary>
    private const int MaxMetadataChunk = 1 << 20;

    private readonly Stream _stream;
    private readonly Socket? _socket;
    private readonly NbdPendingRequest[] _slots;
    private readonly int[] _free;
    private int _freeCount;
    private readonly Lock _lock = new();
    private readonly SemaphoreSlim _available;
    private readonly SemaphoreSlim _sendLock = new(1, 1);
    private readonly byte[] _send = new byte[NbdProtocol.RequestHeaderSize + CoalescedWrite];
    private readonly byte[] _receive = new byte[64 << 10];
    private int _receiveStart;
    private int _receiveEnd;
    private ulong _generation;
    private BlockException? _dead;
    private readonly Task _receiver;
    private int _disposed;

    private NbdClient(Stream stream, Socket? socket, NbdExportInfo export, int maxInFlight)
    {
        _stream = stream;
        _socket = socket;
        Export = export;
        int count = Math.Clamp(maxInFlight, 1, 1 << 15);
        _slots = new NbdPendingRequest[count];
        _free = new int[count];
        for (int i = 0; i < count; i++)
        {
            _slots[i] = new NbdPendingRequest(i);
            _free[i] = count - 1 - i;
        }
        _freeCount = count;
        _available = new SemaphoreSlim(count, count);
        _receiver = Task.Run(ReceiveLoopAsync);
    }

    /// <summary>The export as negotiated.</summary>
    public NbdExportInfo Export { get; }

    /// <summary>True once the connection has failed or been closed; every request then fails with EIO.</summary>
    public bool IsClosed => Volatile.Read(ref _dead) != null;

    /// <summary>Connects to <paramref name="server"/> and negotiates.</summary>
    /// <exception cref="BlockException">The connection or the handshake failed (QEMU's messages).</exception>
    public static async Task<NbdClient> ConnectAsync(NbdServerAddress server, NbdClientOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(server);
        ArgumentNullException.ThrowIfNull(options);
        var socket = await NbdSocket.ConnectAsync(server, cancellationToken).ConfigureAwait(false);
        var stream = new NetworkStream(socket, ownsSocket: true);
        try
        {
            var (session, info) = await NbdHandshake.NegotiateAsync(stream, options, cancellationToken).ConfigureAwait(false);
            return new NbdClient(session, socket, info, options.MaxInFlight);
        }
        catch
        {
            await stream.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Negotiates over an already connected <paramref name="stream"/> (which the client then owns).</summary>
    /// <exception cref="BlockException">The handshake failed.</exception>
    public static async Task<NbdClient> ConnectAsync(Stream stream, NbdClientOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(options);
        try
        {
            var (session, info) = await NbdHandshake.NegotiateAsync(stream, options, cancellationToken).ConfigureAwait(false);
            return new NbdClient(session, null, info, options.MaxInFlight);
        }
        catch
        {
            await stream.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Reads <paramref name="buffers"/>.Length bytes at <paramref name="offset"/> (at most 32 MiB).</summary>
    /// <remarks>A read larger than <see cref="PartSize"/> goes out as several requests in flight at once.</remarks>
    public ValueTask ReadAsync(long offset, IoVector buffers) =>
        buffers.Length > PartSize
            ? RunSplitAsync(NbdProtocol.CmdRead, 0, offset, buffers)
            : RunAsync(NbdProtocol.CmdRead, 0, offset, buffers.Length, buffers);

    /// <summary>Writes <paramref name="data"/> at <paramref name="offset"/> (at most 32 MiB), with FUA if asked.</summary>
    /// <remarks>A write larger than <see cref="PartSize"/> goes out as several requests in flight at once, each with FUA if asked.</remarks>
    public ValueTask WriteAsync(long offset, IoVector data, bool fua) =>
        data.Length > PartSize
            ? RunSplitAsync(NbdProtocol.CmdWrite, fua ? NbdProtocol.CmdFlagFua : (ushort)0, offset, data)
            : RunAsync(NbdProtocol.CmdWrite, fua ? NbdProtocol.CmdFlagFua : (ushort)0, offset, data.Length, data);

    /// <summary>Sends FLUSH.</summary>
    public ValueTask FlushAsync() => RunAsync(NbdProtocol.CmdFlush, 0, 0, 0, default);

    /// <summary>Sends TRIM for <c>[offset, offset + length)</c>.</summary>
    public ValueTask TrimAsync(long offset, uint length, bool fua) =>
        RunAsync(NbdProtocol.CmdTrim, fua ? NbdProtocol.CmdFlagFua : (ushort)0, offset, length, default);

    /// <summary>Sends WRITE_ZEROES with the command flags <paramref name="flags"/> (FUA, NO_HOLE, FAST_ZERO).</summary>
    public ValueTask WriteZeroesAsync(long offset, uint length, ushort flags) =>
        RunAsync(NbdProtocol.CmdWriteZeroes, flags, offset, length, default);

    /// <summary>
    /// Asks for the <c>base:allocation</c> status of <c>[offset, offset + length)</c> (one extent, REQ_ONE) and returns
    /// the first extent's length (clipped to the request) and flags (<c>NBD_STATE_HOLE</c>, <c>NBD_STATE_ZERO</c>).
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<(uint Length, uint Flags)> BlockStatusAsync(long offset, uint length)
    {
        if (Export.BaseAllocationContext is null)
            ThrowNoBlockStatus();
        var slot = (await StartAsync(NbdProtocol.CmdBlockStatus, NbdProtocol.CmdFlagReqOne, offset, length, default).ConfigureAwait(false))!;
        try
        {
            await new ValueTask(slot, slot.Version).ConfigureAwait(false);
            return (Math.Min(slot.ExtentLength, length), slot.ExtentFlags);
        }
        finally
        {
            Return(slot);
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask RunAsync(ushort command, ushort flags, long offset, long length, IoVector buffer)
    {
        var slot = (await StartAsync(command, flags, offset, length, buffer).ConfigureAwait(false))!;
        try
        {
            await new ValueTask(slot, slot.Version).ConfigureAwait(false);
        }
        finally
        {
            Return(slot);
        }
    }

    /// <summary>
    /// A READ or WRITE as requests of <see cref="PartSize"/>, as many in flight as there are free slots; the first
    /// failure is thrown once every part sent has been answered (their buffers are the caller's).
    /// </summary>
    /// <remarks>
    /// The parts in flight are chained through their slots, oldest first. While it holds a part, the request never
    /// waits for a free slot: when none is free it waits for its own oldest part instead, so two split requests can
    /// never each hold slots while waiting for the other's.
    /// </remarks>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask RunSplitAsync(ushort command, ushort flags, long offset, IoVector buffers)
    {
        NbdPendingRequest? head = null;
        NbdPendingRequest? tail = null;
        BlockException? failure = null;
        int done = 0;
        while (done < buffers.Length && failure is null)
        {
            int length = Math.Min(PartSize, buffers.Length - done);
            NbdPendingRequest? slot = null;
            try
            {
                slot = await StartAsync(command, flags, offset + done, length, buffers.Slice(done, length), wait: head is null).ConfigureAwait(false);
            }
            catch (BlockException e)
            {
                failure = e;
            }
            if (slot is not null)
            {
                if (head is null)
                    head = slot;
                else
                    tail!.Next = slot;
                tail = slot;
                done += length;
            }
            else if (head is not null)
            {
                var oldest = head;
                head = oldest.Next;
                oldest.Next = null;
                var error = await FinishPartAsync(oldest).ConfigureAwait(false);
                failure ??= error;
            }
        }
        while (head is not null)
        {
            var oldest = head;
            head = oldest.Next;
            oldest.Next = null;
            var error = await FinishPartAsync(oldest).ConfigureAwait(false);
            failure ??= error;
        }
        if (failure is not null)
            throw failure;
    }

    /// <summary>Waits for one part of a split request and returns its slot; its failure, or null.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<BlockException?> FinishPartAsync(NbdPendingRequest slot)
    {
        try
        {
            await new ValueTask(slot, slot.Version).ConfigureAwait(false);
            return null;
        }
        catch (BlockException e)
        {
            return e;
        }
        finally
        {
            Return(slot);
        }
    }

    /// <summary>
    /// Takes a slot, registers the request and sends it. The slot completes when its reply has been read. Without
    /// <paramref name="wait"/>, returns null at once when no slot is free.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<NbdPendingRequest?> StartAsync(ushort command, ushort flags, long offset, long length, IoVector buffer, bool wait = true)
    {
        if (offset < 0 || (ulong)length > uint.MaxValue)
            ThrowBadRequest();
        if (Volatile.Read(ref _dead) is { } dead)
            throw Dead(dead);
        if (wait)
            await _available.WaitAsync().ConfigureAwait(false);
        else if (!_available.Wait(0))
            return null;
        NbdPendingRequest slot;
        lock (_lock)
        {
            if (_dead is { } closed)
            {
                _available.Release();
                throw Dead(closed);
            }
            slot = _slots[_free[--_freeCount]];
            slot.Reset(command, offset, (int)Math.Min(length, int.MaxValue), command == NbdProtocol.CmdRead ? buffer : default);
            slot.Cookie = (++_generation << 16) | (uint)slot.Index;
            slot.InFlight = true;
        }
        await _sendLock.WaitAsync().ConfigureAwait(false);
        try
        {
            var header = new NbdRequest(flags, command, slot.Cookie, (ulong)offset, (uint)length);
            header.Write(_send);
            if (command != NbdProtocol.CmdWrite || length == 0)
            {
                await _stream.WriteAsync(_send.AsMemory(0, NbdProtocol.RequestHeaderSize)).ConfigureAwait(false);
            }
            else if (length <= CoalescedWrite)
            {
                buffer.CopyTo(_send.AsSpan(NbdProtocol.RequestHeaderSize));
                await _stream.WriteAsync(_send.AsMemory(0, NbdProtocol.RequestHeaderSize + (int)length)).ConfigureAwait(false);
            }
            else
            {
                await _stream.WriteAsync(_send.AsMemory(0, NbdProtocol.RequestHeaderSize)).ConfigureAwait(false);
                foreach (var segment in buffer)
                    await _stream.WriteAsync(segment).ConfigureAwait(false);
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or SocketException or NotSupportedException)
        {
            // Part of a request may be on the wire: the connection cannot go on. The receive loop fails every request
            // in flight, this one included, so the slot is awaited (and returned) as usual.
            Kill($"Failed to send the request: {e.Message}");
        }
        finally
        {
            _sendLock.Release();
        }
        return slot;
    }

    private void Return(NbdPendingRequest slot)
    {
        lock (_lock)
        {
            slot.Buffer = default;
            _free[_freeCount++] = slot.Index;
        }
        _available.Release();
    }

    /// <summary>Closes the transport so that the receive loop fails every request in flight with <paramref name="reason"/>.</summary>
    private void Kill(string reason)
    {
        lock (_lock)
            _dead ??= new BlockException(Errno.EIO, reason);
        CloseTransport();
    }

    private void CloseTransport()
    {
        try
        {
            _socket?.Shutdown(SocketShutdown.Both);
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException)
        {
            // Already gone.
        }
        try
        {
            _stream.Dispose();
        }
        catch (Exception e) when (e is IOException or SocketException)
        {
            // The peer is gone; nothing to flush.
        }
    }

    private async Task ReceiveLoopAsync()
    {
        BlockException failure;
        try
        {
            while (true)
            {
                if (!await FillAsync(4, atMessageStart: true).ConfigureAwait(false))
                {
                    failure = new BlockException(Errno.EIO, "Connection closed by the NBD server");
                    break;
                }
                uint magic = BinaryPrimitives.ReadUInt32BigEndian(_receive.AsSpan(_receiveStart));
                if (magic == NbdProtocol.SimpleReplyMagic)
                    await ReceiveSimpleReplyAsync().ConfigureAwait(false);
                else if (magic == NbdProtocol.StructuredReplyMagic && Export.StructuredReplies)
                    await ReceiveChunkAsync().ConfigureAwait(false);
                else
                    throw new NbdProtocolException($"invalid reply magic 0x{magic:x8}");
            }
        }
        catch (NbdProtocolException e)
        {
            failure = new BlockException(Errno.EIO, $"Protocol error: {e.Message}");
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or SocketException or NotSupportedException or InvalidOperationException)
        {
            failure = new BlockException(Errno.EIO, $"Connection to the NBD server lost: {e.Message}");
        }
        FailAll(failure);
    }

    private void FailAll(BlockException failure)
    {
        List<NbdPendingRequest> failed = [];
        lock (_lock)
        {
            _dead ??= failure;
            failure = _dead;
            foreach (var slot in _slots)
            {
                if (slot.InFlight)
                {
                    slot.InFlight = false;
                    failed.Add(slot);
                }
            }
        }
        CloseTransport();
        foreach (var slot in failed)
            slot.Fail(new BlockException(Errno.EIO, failure.Message));
    }

    private NbdPendingRequest Find(ulong cookie)
    {
        lock (_lock)
        {
            int index = (int)(cookie & 0xffff);
            if (index < _slots.Length && _slots[index] is { InFlight: true } slot && slot.Cookie == cookie)
                return slot;
        }
        throw new NbdProtocolException($"reply for an unknown cookie {cookie}");
    }

    private void Finish(NbdPendingRequest slot)
    {
        lock (_lock)
            slot.InFlight = false;
        if (slot.Error != 0)
            slot.Fail(ServerError(slot.Error, slot.ErrorMessage));
        else if (slot.Command == NbdProtocol.CmdRead && slot.Covered != slot.Length)
            slot.Fail(new BlockException(Errno.EIO, $"NBD server sent {slot.Covered} of {slot.Length} bytes of a read"));
        else if (slot.Command == NbdProtocol.CmdBlockStatus && !slot.HasExtent)
            slot.Fail(new BlockException(Errno.EIO, "NBD server sent no block status"));
        else
            slot.Complete();
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ReceiveSimpleReplyAsync()
    {
        await FillAsync(NbdProtocol.SimpleReplyHeaderSize).ConfigureAwait(false);
        var header = _receive.AsSpan(_receiveStart, NbdProtocol.SimpleReplyHeaderSize);
        uint error = BinaryPrimitives.ReadUInt32BigEndian(header[4..]);
        ulong cookie = BinaryPrimitives.ReadUInt64BigEndian(header[8..]);
        _receiveStart += NbdProtocol.SimpleReplyHeaderSize;
        var slot = Find(cookie);
        if (error != 0)
        {
            slot.Error = error;
        }
        else if (slot.Command == NbdProtocol.CmdRead)
        {
            if (Export.StructuredReplies)
                throw new NbdProtocolException("simple reply with data to a read after structured replies were negotiated");
            await ReceiveIntoAsync(slot.Buffer).ConfigureAwait(false);
            slot.Covered = slot.Length;
        }
        else if (slot.Command == NbdProtocol.CmdBlockStatus)
        {
            throw new NbdProtocolException("simple reply without error to a block status request");
        }
        Finish(slot);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ReceiveChunkAsync()
    {
        await FillAsync(NbdProtocol.ChunkHeaderSize).ConfigureAwait(false);
        var header = _receive.AsSpan(_receiveStart, NbdProtocol.ChunkHeaderSize);
        ushort flags = BinaryPrimitives.ReadUInt16BigEndian(header[4..]);
        ushort type = BinaryPrimitives.ReadUInt16BigEndian(header[6..]);
        ulong cookie = BinaryPrimitives.ReadUInt64BigEndian(header[8..]);
        uint length = BinaryPrimitives.ReadUInt32BigEndian(header[16..]);
        _receiveStart += NbdProtocol.ChunkHeaderSize;
        var slot = Find(cookie);
        bool done = (flags & NbdProtocol.ReplyFlagDone) != 0;
        switch (type)
        {
            case NbdProtocol.ReplyTypeNone:
                if (length != 0 || !done)
                    throw new NbdProtocolException("NBD_REPLY_TYPE_NONE chunk with a payload or without the done flag");
                break;
            case NbdProtocol.ReplyTypeOffsetData:
            {
                if (slot.Command != NbdProtocol.CmdRead || length <= 8)
                    throw new NbdProtocolException("unexpected or empty data chunk");
                await FillAsync(8).ConfigureAwait(false);
                ulong offset = BinaryPrimitives.ReadUInt64BigEndian(_receive.AsSpan(_receiveStart));
                _receiveStart += 8;
                long count = length - 8L;
                int at = CheckRange(slot, offset, count);
                await ReceiveIntoAsync(slot.Buffer.Slice(at, (int)count)).ConfigureAwait(false);
                slot.Covered += count;
                break;
            }
            case NbdProtocol.ReplyTypeOffsetHole:
            {
                if (slot.Command != NbdProtocol.CmdRead || length != 12)
                    throw new NbdProtocolException("unexpected or malformed hole chunk");
                await FillAsync(12).ConfigureAwait(false);
                ulong offset = BinaryPrimitives.ReadUInt64BigEndian(_receive.AsSpan(_receiveStart));
                uint count = BinaryPrimitives.ReadUInt32BigEndian(_receive.AsSpan(_receiveStart + 8));
                _receiveStart += 12;
                if (count == 0)
                    throw new NbdProtocolException("empty hole chunk");
                int at = CheckRange(slot, offset, count);
                slot.Buffer.Slice(at, (int)count).Clear();
                slot.Covered += count;
                break;
            }
            case NbdProtocol.ReplyTypeBlockStatus:
            {
                if (slot.Command != NbdProtocol.CmdBlockStatus || length < 12 || (length - 4) % 8 != 0 || length > MaxMetadataChunk)
                    throw new NbdProtocolException("unexpected or malformed block status chunk");
                if (slot.HasExtent)
                    throw new NbdProtocolException("more than one block status chunk for one context");
                await FillAsync(12).ConfigureAwait(false);
                var payload = _receive.AsSpan(_receiveStart, 12);
                uint context = BinaryPrimitives.ReadUInt32BigEndian(payload);
                uint extentLength = BinaryPrimitives.ReadUInt32BigEndian(payload[4..]);
                uint extentFlags = BinaryPrimitives.ReadUInt32BigEndian(payload[8..]);
                _receiveStart += 12;
                await SkipAsync(length - 12).ConfigureAwait(false);
                if (context != Export.BaseAllocationContext)
                    throw new NbdProtocolException($"block status for the unrequested context {context}");
                if (extentLength == 0)
                    throw new NbdProtocolException("empty block status extent");
                slot.HasExtent = true;
                slot.ExtentLength = extentLength;
                slot.ExtentFlags = extentFlags;
                break;
            }
            default:
                if ((type & 0x8000) == 0)
                    throw new NbdProtocolException($"unknown chunk type {type}");
                await ReceiveErrorChunkAsync(slot, type, length).ConfigureAwait(false);
                break;
        }
        if (done)
            Finish(slot);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ReceiveErrorChunkAsync(NbdPendingRequest slot, ushort type, uint length)
    {
        // ERROR: u32 error, u16 message length, message; ERROR_OFFSET adds a u64 offset after the message.
        if (length < 6 || length > 6 + NbdProtocol.MaxString + 8)
            throw new NbdProtocolException("malformed error chunk");
        await FillAsync((int)length).ConfigureAwait(false);
        var payload = _receive.AsSpan(_receiveStart, (int)length);
        _receiveStart += (int)length;
        uint error = BinaryPrimitives.ReadUInt32BigEndian(payload);
        int messageLength = BinaryPrimitives.ReadUInt16BigEndian(payload[4..]);
        int extra = type == NbdProtocol.ReplyTypeErrorOffset ? 8 : 0;
        if (type is NbdProtocol.ReplyTypeError or NbdProtocol.ReplyTypeErrorOffset && 6 + messageLength + extra != length)
            throw new NbdProtocolException("error chunk with an inconsistent length");
        if (messageLength > length - 6)
            throw new NbdProtocolException("error chunk message longer than the chunk");
        if (error == 0)
            throw new NbdProtocolException("error chunk without an error");
        if (extra != 0)
        {
            ulong offset = BinaryPrimitives.ReadUInt64BigEndian(payload[(6 + messageLength)..]);
            if (offset < (ulong)slot.Offset || offset >= (ulong)slot.Offset + (ulong)slot.Length)
                throw new NbdProtocolException("error chunk offset outside the request");
        }
        if (slot.Error == 0)
        {
            slot.Error = error;
            slot.ErrorMessage = messageLength == 0 ? null : Encoding.UTF8.GetString(payload.Slice(6, messageLength));
        }
    }

    private static int CheckRange(NbdPendingRequest slot, ulong offset, long count)
    {
        if (offset < (ulong)slot.Offset || offset - (ulong)slot.Offset > (ulong)slot.Length || (ulong)count > (ulong)slot.Length - (offset - (ulong)slot.Offset))
            throw new NbdProtocolException("chunk outside the request");
        return (int)(offset - (ulong)slot.Offset);
    }

    /// <summary>Makes <paramref name="count"/> bytes available at <c>_receiveStart</c>; false on a clean end of stream before a message.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<bool> FillAsync(int count, bool atMessageStart = false)
    {
        if (_receiveEnd - _receiveStart >= count)
            return true;
        if (_receiveStart > 0)
        {
            Buffer.BlockCopy(_receive, _receiveStart, _receive, 0, _receiveEnd - _receiveStart);
            _receiveEnd -= _receiveStart;
            _receiveStart = 0;
        }
        while (_receiveEnd < count)
        {
            int read = await _stream.ReadAsync(_receive.AsMemory(_receiveEnd)).ConfigureAwait(false);
            if (read == 0)
            {
                if (atMessageStart && _receiveEnd == 0)
                    return false;
                throw new NbdProtocolException("truncated reply: the connection closed in the middle of a message");
            }
            _receiveEnd += read;
        }
        return true;
    }

    /// <summary>Reads exactly <paramref name="destination"/>.Length payload bytes: what is buffered, then straight from the stream.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ReceiveIntoAsync(IoVector destination)
    {
        foreach (var segment in destination)
        {
            var target = segment;
            int buffered = Math.Min(_receiveEnd - _receiveStart, target.Length);
            if (buffered > 0)
            {
                _receive.AsMemory(_receiveStart, buffered).CopyTo(target);
                _receiveStart += buffered;
                target = target[buffered..];
            }
            while (!target.IsEmpty)
            {
                int read = await _stream.ReadAsync(target).ConfigureAwait(false);
                if (read == 0)
                    throw new NbdProtocolException("truncated reply: the connection closed in the middle of a message");
                target = target[read..];
            }
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask SkipAsync(long count)
    {
        while (count > 0)
        {
            int step = (int)Math.Min(count, _receive.Length);
            await FillAsync(step).ConfigureAwait(false);
            _receiveStart += step;
            count -= step;
        }
    }

    /// <summary>
    /// Sends <c>NBD_CMD_DISC</c> (when the connection is still up), closes it, and waits for the receive loop to end.
    /// Requests still in flight fail with EIO.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        if (!IsClosed)
        {
            await _sendLock.WaitAsync().ConfigureAwait(false);
            try
            {
                new NbdRequest(0, NbdProtocol.CmdDisc, 0, 0, 0).Write(_send);
                await _stream.WriteAsync(_send.AsMemory(0, NbdProtocol.RequestHeaderSize)).ConfigureAwait(false);
                await _stream.FlushAsync().ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or ObjectDisposedException or SocketException)
            {
                // The server went first; closing is all that is left.
            }
            finally
            {
                _sendLock.Release();
            }
        }
        lock (_lock)
            _dead ??= new BlockException(Errno.EIO, "NBD connection closed");
        CloseTransport();
        await _receiver.ConfigureAwait(false);
        _available.Dispose();
        _sendLock.Dispose();
    }

    /// <summary>The exception for a request that the server answered with an error.</summary>
    private static BlockException ServerError(uint error, string? message)
    {
        var errno = error switch
        {
            NbdProtocol.EPERM => Errno.EPERM,
            NbdProtocol.EIO => Errno.EIO,
            NbdProtocol.ENOMEM => Errno.ENOMEM,
            NbdProtocol.ENOSPC => Errno.ENOSPC,
            NbdProtocol.ENOTSUP => Errno.ENOTSUP,
            NbdProtocol.ESHUTDOWN => Errno.EIO,
            _ => Errno.EINVAL,
        };
        return new BlockException(errno, message is null ? ErrnoText.Describe(errno) : $"{ErrnoText.Describe(errno)} (server: {message})");
    }

    private static BlockException Dead(BlockException cause) => new(Errno.EIO, cause.Message);

    [DoesNotReturn]
    private static void ThrowBadRequest() => throw new BlockException(Errno.EINVAL, "NBD request out of range");

    [DoesNotReturn]
    private static void ThrowNoBlockStatus() => throw new BlockException(Errno.ENOTSUP, "The NBD server does not report block status");
}
