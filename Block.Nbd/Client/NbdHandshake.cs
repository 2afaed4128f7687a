using System.Buffers.Binary;
using System.Net.Security;
using System.Text;
using Block.Nbd.Protocol;

namespace Block.Nbd.Client;

/// <summary>
/// The client side of the fixed newstyle handshake: STARTTLS when asked, STRUCTURED_REPLY, SET_META_CONTEXT
/// <c>base:allocation</c>, then GO with a request for block sizes (EXPORT_NAME for servers without GO). Failures are
/// <see cref="BlockException"/>s with QEMU 7.2's messages; the server's own text follows on a
/// <c>server reported:</c> line, as QEMU prints its hint.
/// </summary>
internal static class NbdHandshake
{
    /// <summary>The longest option reply we read (a server's description or error text is far shorter).</summary>
    private const int MaxOptionReply = 64 << 10;

    /// <summary>Negotiates over <paramref name="stream"/>; returns the stream to use afterwards (TLS when negotiated).</summary>
    public static async Task<(Stream Stream, NbdExportInfo Info)> NegotiateAsync(Stream stream, NbdClientOptions options, CancellationToken cancellationToken)
    {
        var buffer = new byte[18];
        await ReadExactlyAsync(stream, buffer.AsMemory(0, 16), cancellationToken).ConfigureAwait(false);
        if (BinaryPrimitives.ReadUInt64BigEndian(buffer) != NbdProtocol.NbdMagic)
            throw Protocol("server did not send the NBD magic");
        ulong second = BinaryPrimitives.ReadUInt64BigEndian(buffer.AsSpan(8));
        if (second == NbdProtocol.OldstyleMagic)
            throw new BlockException(Errno.EINVAL, "Server does not support oldstyle negotiation any more; use a newstyle server");
        if (second != NbdProtocol.OptionMagic)
            throw Protocol("Bad server magic received");
        await ReadExactlyAsync(stream, buffer.AsMemory(0, 2), cancellationToken).ConfigureAwait(false);
        ushort serverFlags = BinaryPrimitives.ReadUInt16BigEndian(buffer);
        bool fixedNewstyle = (serverFlags & NbdProtocol.FlagFixedNewstyle) != 0;
        bool noZeroes = (serverFlags & NbdProtocol.FlagNoZeroes) != 0;
        uint clientFlags = (fixedNewstyle ? NbdProtocol.FlagFixedNewstyle : 0u) | (noZeroes ? NbdProtocol.FlagNoZeroes : 0u);
        BinaryPrimitives.WriteUInt32BigEndian(buffer, clientFlags);
        await stream.WriteAsync(buffer.AsMemory(0, 4), cancellationToken).ConfigureAwait(false);

        bool tls = false;
        if (options.Tls is { } tlsOptions)
        {
            if (!fixedNewstyle)
                throw new BlockException(Errno.EINVAL, "Server does not support STARTTLS");
            var reply = await OptionAsync(stream, NbdProtocol.OptStartTls, [], cancellationToken).ConfigureAwait(false);
            if (reply.Type != NbdProtocol.RepAck)
            {
                if (reply.Type is NbdProtocol.RepErrUnsup or NbdProtocol.RepErrPolicy)
                    throw new BlockException(Errno.EINVAL, "Server don't support STARTTLS option");
                throw ReplyError(reply, NbdProtocol.OptStartTls);
            }
            var ssl = new SslStream(stream, leaveInnerStreamOpen: false);
            try
            {
                await ssl.AuthenticateAsClientAsync(tlsOptions, cancellationToken).ConfigureAwait(false);
            }
            catch (System.Security.Authentication.AuthenticationException e) when (RejectedByUs(e))
            {
                await ssl.DisposeAsync().ConfigureAwait(false);
                throw new BlockException(Errno.EIO, $"TLS handshake failed: {e.Message}");
            }
            catch (Exception e) when (e is IOException or System.Security.Authentication.AuthenticationException)
            {
                // The server refused us (no or an unknown client certificate): its alert or its close arrived before
                // the handshake had finished here, which a loaded machine makes likely. QEMU's client reports the
                // refusal on the next read whatever the timing, so we say what it says.
                await ssl.DisposeAsync().ConfigureAwait(false);
                throw new BlockException(Errno.EIO, "Failed to read option reply: Cannot read from TLS channel: Software caused connection abort");
            }
            stream = ssl;
            tls = true;
        }

        try
        {
            return await NegotiateOptionsAsync(stream, options, fixedNewstyle, noZeroes, tls, cancellationToken).ConfigureAwait(false);
        }
        catch (TlsChannelClosedException)
        {
            // A TLS server that refuses the client (no certificate, an unknown CA) drops the connection after the
            // handshake. QEMU then reports GnuTLS's ECONNABORTED (or EIO, depending on timing) on reading the reply.
            throw new BlockException(Errno.EIO, "Failed to read option reply: Cannot read from TLS channel: Software caused connection abort");
        }
    }

    /// <summary>Whether the handshake failed because our own check refused the server's certificate.</summary>
    private static bool RejectedByUs(System.Security.Authentication.AuthenticationException e) =>
        e.Message.Contains("RemoteCertificateValidationCallback", StringComparison.Ordinal);

    /// <summary>A TLS session that ended while an option reply was awaited.</summary>
    private sealed class TlsChannelClosedException() : BlockException(Errno.EIO, "TLS channel closed");

    private static async Task<(Stream Stream, NbdExportInfo Info)> NegotiateOptionsAsync(Stream stream, NbdClientOptions options,
        bool fixedNewstyle, bool noZeroes, bool tls, CancellationToken cancellationToken)
    {
        if (!fixedNewstyle)
            return (stream, await ExportNameAsync(stream, options.Export, noZeroes, tls, cancellationToken).ConfigureAwait(false));

        bool structured = false;
        uint? baseAllocation = null;
        if (options.StructuredReplies)
        {
            var reply = await OptionAsync(stream, NbdProtocol.OptStructuredReply, [], cancellationToken).ConfigureAwait(false);
            // Any refusal (unsupported, or TLS required first) only means no structured replies; GO reports the rest.
            structured = reply.Type == NbdProtocol.RepAck;
            if (structured)
                baseAllocation = await SetMetaContextAsync(stream, options.Export, cancellationToken).ConfigureAwait(false);
        }

        byte[] name = Encoding.UTF8.GetBytes(options.Export);
        var go = new byte[4 + name.Length + 2 + 2];
        BinaryPrimitives.WriteUInt32BigEndian(go, (uint)name.Length);
        name.CopyTo(go, 4);
        BinaryPrimitives.WriteUInt16BigEndian(go.AsSpan(4 + name.Length), 1);
        BinaryPrimitives.WriteUInt16BigEndian(go.AsSpan(6 + name.Length), NbdProtocol.InfoBlockSize);
        await SendOptionAsync(stream, NbdProtocol.OptGo, go, cancellationToken).ConfigureAwait(false);
        long? size = null;
        ushort flags = 0;
        uint min = 0, preferred = 0, max = 0;
        while (true)
        {
            var reply = await ReadReplyAsync(stream, NbdProtocol.OptGo, cancellationToken).ConfigureAwait(false);
            if (reply.Type == NbdProtocol.RepAck)
                break;
            if (reply.Type == NbdProtocol.RepErrUnsup)
                return (stream, await ExportNameAsync(stream, options.Export, noZeroes, tls, cancellationToken).ConfigureAwait(false));
            if ((reply.Type & 0x80000000) != 0)
                throw ReplyError(reply, NbdProtocol.OptGo);
            if (reply.Type != NbdProtocol.RepInfo)
                throw Protocol($"unexpected reply type {reply.Type} to NBD_OPT_GO");
            var data = reply.Data;
            if (data.Length < 2)
                throw Protocol("NBD_REP_INFO too short");
            switch (BinaryPrimitives.ReadUInt16BigEndian(data))
            {
                case NbdProtocol.InfoExport:
                    if (data.Length != 12)
                        throw Protocol("NBD_INFO_EXPORT has the wrong length");
                    ulong exportSize = BinaryPrimitives.ReadUInt64BigEndian(data.AsSpan(2));
                    if (exportSize > long.MaxValue)
                        throw Protocol("export size too large");
                    size = (long)exportSize;
                    flags = BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(10));
                    break;
                case NbdProtocol.InfoBlockSize:
                    if (data.Length != 14)
                        throw Protocol("NBD_INFO_BLOCK_SIZE has the wrong length");
                    min = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(2));
                    preferred = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(6));
                    max = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(10));
                    ValidateBlockSizes(min, preferred, max);
                    break;
            }
        }
        if (size is null)
            throw Protocol("server omitted NBD_INFO_EXPORT");
        return (stream, new NbdExportInfo
        {
            Size = size.Value,
            Flags = flags,
            MinBlock = min,
            PreferredBlock = preferred,
            MaxBlock = max,
            StructuredReplies = structured,
            BaseAllocationContext = baseAllocation,
            Tls = tls,
        });
    }

    private static void ValidateBlockSizes(uint min, uint preferred, uint max)
    {
        if (min == 0 || !uint.IsPow2(min) || min > 64 * 1024)
            throw Protocol($"server minimum block size {min} is not a power of two up to 64 KiB");
        if (preferred < min || !uint.IsPow2(preferred))
            throw Protocol($"server preferred block size {preferred} is not a power of two at least {min}");
        if (max < preferred || (max % min != 0 && max != uint.MaxValue))
            throw Protocol($"server maximum block size {max} is invalid");
    }

    private static async Task<uint?> SetMetaContextAsync(Stream stream, string export, CancellationToken cancellationToken)
    {
        byte[] name = Encoding.UTF8.GetBytes(export);
        byte[] query = Encoding.ASCII.GetBytes(NbdProtocol.BaseAllocation);
        var data = new byte[4 + name.Length + 4 + 4 + query.Length];
        BinaryPrimitives.WriteUInt32BigEndian(data, (uint)name.Length);
        name.CopyTo(data, 4);
        BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(4 + name.Length), 1);
        BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(8 + name.Length), (uint)query.Length);
        query.CopyTo(data, 12 + name.Length);
        await SendOptionAsync(stream, NbdProtocol.OptSetMetaContext, data, cancellationToken).ConfigureAwait(false);
        uint? id = null;
        while (true)
        {
            var reply = await ReadReplyAsync(stream, NbdProtocol.OptSetMetaContext, cancellationToken).ConfigureAwait(false);
            if (reply.Type == NbdProtocol.RepAck)
                return id;
            if ((reply.Type & 0x80000000) != 0)
                return null;
            if (reply.Type != NbdProtocol.RepMetaContext || reply.Data.Length < 4)
                throw Protocol("unexpected reply to NBD_OPT_SET_META_CONTEXT");
            string contextName = Encoding.UTF8.GetString(reply.Data, 4, reply.Data.Length - 4);
            if (contextName != NbdProtocol.BaseAllocation || id != null)
                throw Protocol($"server sent the unrequested context '{contextName}'");
            id = BinaryPrimitives.ReadUInt32BigEndian(reply.Data);
        }
    }

    private static async Task<NbdExportInfo> ExportNameAsync(Stream stream, string export, bool noZeroes, bool tls, CancellationToken cancellationToken)
    {
        await SendOptionAsync(stream, NbdProtocol.OptExportName, Encoding.UTF8.GetBytes(export), cancellationToken).ConfigureAwait(false);
        var answer = new byte[noZeroes ? 10 : 134];
        try
        {
            await ReadExactlyAsync(stream, answer, cancellationToken).ConfigureAwait(false);
        }
        catch (BlockException)
        {
            throw new BlockException(Errno.EINVAL, "Requested export not available");
        }
        ulong size = BinaryPrimitives.ReadUInt64BigEndian(answer);
        if (size > long.MaxValue)
            throw Protocol("export size too large");
        return new NbdExportInfo { Size = (long)size, Flags = BinaryPrimitives.ReadUInt16BigEndian(answer.AsSpan(8)), Tls = tls };
    }

    private readonly record struct OptionReply(uint Type, byte[] Data);

    private static async Task<OptionReply> OptionAsync(Stream stream, uint option, byte[] data, CancellationToken cancellationToken)
    {
        await SendOptionAsync(stream, option, data, cancellationToken).ConfigureAwait(false);
        return await ReadReplyAsync(stream, option, cancellationToken).ConfigureAwait(false);
    }

    private static async Task SendOptionAsync(Stream stream, uint option, byte[] data, CancellationToken cancellationToken)
    {
        var message = new byte[16 + data.Length];
        BinaryPrimitives.WriteUInt64BigEndian(message, NbdProtocol.OptionMagic);
        BinaryPrimitives.WriteUInt32BigEndian(message.AsSpan(8), option);
        BinaryPrimitives.WriteUInt32BigEndian(message.AsSpan(12), (uint)data.Length);
        data.CopyTo(message, 16);
        try
        {
            await stream.WriteAsync(message, cancellationToken).ConfigureAwait(false);
        }
        catch (IOException) when (stream is SslStream)
        {
            // The server refused us after the handshake and closed before this option went out: QEMU's client says
            // so in these words when its write loses that race.
            throw new BlockException(Errno.EIO, "Failed to send option request header: Cannot write to TLS channel: Input/output error");
        }
        catch (IOException e)
        {
            throw new BlockException(Errno.EIO, $"Failed to send option request: {e.Message}");
        }
    }

    private static async Task<OptionReply> ReadReplyAsync(Stream stream, uint option, CancellationToken cancellationToken)
    {
        var header = new byte[20];
        try
        {
            await ReadExactlyAsync(stream, header, cancellationToken).ConfigureAwait(false);
        }
        catch (BlockException) when (stream is SslStream)
        {
            throw new TlsChannelClosedException();
        }
        if (BinaryPrimitives.ReadUInt64BigEndian(header) != NbdProtocol.OptionReplyMagic)
            throw Protocol("Unexpected option reply magic");
        if (BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(8)) != option)
            throw Protocol($"Unexpected option in reply to option {option}");
        uint type = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(12));
        uint length = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(16));
        if (length > MaxOptionReply)
            throw Protocol($"option reply of {length} bytes is too long");
        var data = new byte[length];
        await ReadExactlyAsync(stream, data, cancellationToken).ConfigureAwait(false);
        return new OptionReply(type, data);
    }

    private static string OptionName(uint option) => option switch
    {
        NbdProtocol.OptExportName => "export name",
        NbdProtocol.OptAbort => "abort",
        NbdProtocol.OptList => "list",
        NbdProtocol.OptStartTls => "starttls",
        NbdProtocol.OptInfo => "info",
        NbdProtocol.OptGo => "go",
        NbdProtocol.OptStructuredReply => "structured reply",
        NbdProtocol.OptListMetaContext => "list meta context",
        NbdProtocol.OptSetMetaContext => "set meta context",
        _ => "<unknown>",
    };

    /// <summary>QEMU's message for an error reply to <paramref name="option"/>, with the server's text as a hint line.</summary>
    private static BlockException ReplyError(OptionReply reply, uint option)
    {
        string what = $"option {option} ({OptionName(option)})";
        string message = reply.Type switch
        {
            NbdProtocol.RepErrPolicy => $"Denied by server for {what}",
            NbdProtocol.RepErrInvalid => $"Invalid parameters for {what}",
            NbdProtocol.RepErrPlatform => $"Server lacks support for {what}",
            NbdProtocol.RepErrTlsReqd => $"TLS negotiation required before {what}\nDid you forget a valid tls-creds?",
            NbdProtocol.RepErrUnknown => "Requested export not available",
            NbdProtocol.RepErrShutdown => $"Server shutting down before {what}",
            NbdProtocol.RepErrBlockSizeReqd => $"Server requires INFO_BLOCK_SIZE for {what}",
            _ => $"Unknown error code when asking for {what}",
        };
        if (reply.Data.Length > 0)
        {
            string text = new(Encoding.UTF8.GetString(reply.Data).Select(c => char.IsControl(c) ? '?' : c).ToArray());
            message += $"\nserver reported: {text}";
        }
        return new BlockException(Errno.EINVAL, message);
    }

    private static async Task ReadExactlyAsync(Stream stream, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        try
        {
            await stream.ReadExactlyAsync(buffer, cancellationToken).ConfigureAwait(false);
        }
        catch (EndOfStreamException)
        {
            throw new BlockException(Errno.EIO, "Unexpected end-of-file before all data were read");
        }
        catch (IOException e)
        {
            throw new BlockException(Errno.EIO, $"Failed to read from the NBD server: {e.Message}");
        }
    }

    private static BlockException Protocol(string what) => new(Errno.EINVAL, what);
}
