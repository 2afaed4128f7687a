using System.Buffers.Binary;
using System.Net.Sockets;
using Block.Nbd.Client;
using Block.Nbd.Protocol;
using Block.TestSupport;

namespace Block.Nbd.Tests.Client;

/// <summary>
/// A tiny NBD server driven by the test, for replies no real server sends: it completes a normal handshake
/// (structured replies, <c>base:allocation</c> as context 7, a 1 MiB export), then hands the test each request and
/// lets it write any bytes back.
/// </summary>
internal sealed class ScriptedNbdServer : IAsyncDisposable
{
    public const uint Context = 7;
    public const long Size = 1 << 20;

    private readonly TempDirectory _dir = new();
    private readonly Socket _listener;
    private Socket? _peer;
    private NetworkStream? _stream;

    private ScriptedNbdServer()
    {
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _listener.Bind(new UnixDomainSocketEndPoint(_dir.File("s.sock")));
        _listener.Listen(1);
    }

    /// <summary>Starts the server and connects an <see cref="NbdClient"/> to it.</summary>
    public static async Task<(ScriptedNbdServer Server, NbdClient Client)> StartAsync(bool structured = true)
    {
        var server = new ScriptedNbdServer();
        var accept = server._listener.AcceptAsync();
        var connect = NbdClient.ConnectAsync(NbdServerAddress.Unix(server._dir.File("s.sock")), new NbdClientOptions { StructuredReplies = structured });
        server._peer = await accept;
        server._stream = new NetworkStream(server._peer, ownsSocket: false);
        await server.HandshakeAsync();
        return (server, await connect);
    }

    /// <summary>A connection that only sends <paramref name="greeting"/> and then closes, for handshake failures.</summary>
    public static async Task<Exception> HandshakeFailureAsync(byte[] greeting)
    {
        await using var server = new ScriptedNbdServer();
        var accept = server._listener.AcceptAsync();
        var connect = NbdClient.ConnectAsync(NbdServerAddress.Unix(server._dir.File("s.sock")), new NbdClientOptions());
        server._peer = await accept;
        server._stream = new NetworkStream(server._peer, ownsSocket: false);
        await server._stream.WriteAsync(greeting);
        server._peer.Shutdown(SocketShutdown.Send);
        return await Assert.ThrowsAnyAsync<Exception>(() => connect);
    }

    private async Task HandshakeAsync()
    {
        var s = _stream!;
        var greeting = new byte[18];
        BinaryPrimitives.WriteUInt64BigEndian(greeting, NbdProtocol.NbdMagic);
        BinaryPrimitives.WriteUInt64BigEndian(greeting.AsSpan(8), NbdProtocol.OptionMagic);
        BinaryPrimitives.WriteUInt16BigEndian(greeting.AsSpan(16), 3);
        await s.WriteAsync(greeting);
        await s.ReadExactlyAsync(new byte[4]);
        while (true)
        {
            var header = new byte[16];
            await s.ReadExactlyAsync(header);
            uint option = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(8));
            var data = new byte[BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(12))];
            await s.ReadExactlyAsync(data);
            switch (option)
            {
                case NbdProtocol.OptStructuredReply:
                    await OptionReplyAsync(option, NbdProtocol.RepAck, []);
                    break;
                case NbdProtocol.OptSetMetaContext:
                    var context = new byte[4 + NbdProtocol.BaseAllocation.Length];
                    BinaryPrimitives.WriteUInt32BigEndian(context, Context);
                    System.Text.Encoding.ASCII.GetBytes(NbdProtocol.BaseAllocation).CopyTo(context, 4);
                    await OptionReplyAsync(option, NbdProtocol.RepMetaContext, context);
                    await OptionReplyAsync(option, NbdProtocol.RepAck, []);
                    break;
                case NbdProtocol.OptGo:
                    var info = new byte[12];
                    BinaryPrimitives.WriteUInt16BigEndian(info, NbdProtocol.InfoExport);
                    BinaryPrimitives.WriteUInt64BigEndian(info.AsSpan(2), Size);
                    BinaryPrimitives.WriteUInt16BigEndian(info.AsSpan(10), 0x0CED);
                    await OptionReplyAsync(option, NbdProtocol.RepInfo, info);
                    await OptionReplyAsync(option, NbdProtocol.RepAck, []);
                    return;
                default:
                    await OptionReplyAsync(option, NbdProtocol.RepErrUnsup, []);
                    break;
            }
        }
    }

    private async Task OptionReplyAsync(uint option, uint type, byte[] data)
    {
        var reply = new byte[20 + data.Length];
        BinaryPrimitives.WriteUInt64BigEndian(reply, NbdProtocol.OptionReplyMagic);
        BinaryPrimitives.WriteUInt32BigEndian(reply.AsSpan(8), option);
        BinaryPrimitives.WriteUInt32BigEndian(reply.AsSpan(12), type);
        BinaryPrimitives.WriteUInt32BigEndian(reply.AsSpan(16), (uint)data.Length);
        data.CopyTo(reply, 20);
        await _stream!.WriteAsync(reply);
    }

    /// <summary>Reads the next request header (and a write's payload, which is dropped).</summary>
    public async Task<NbdRequest> ReceiveRequestAsync()
    {
        var header = new byte[NbdProtocol.RequestHeaderSize];
        await _stream!.ReadExactlyAsync(header);
        Assert.True(NbdRequest.TryParse(header, out var request));
        if (request.Type == NbdProtocol.CmdWrite)
            await _stream.ReadExactlyAsync(new byte[request.Length]);
        return request;
    }

    public Task SendAsync(byte[] bytes) => _stream!.WriteAsync(bytes).AsTask();

    /// <summary>A simple reply header.</summary>
    public static byte[] Simple(ulong cookie, uint error = 0)
    {
        var b = new byte[16];
        BinaryPrimitives.WriteUInt32BigEndian(b, NbdProtocol.SimpleReplyMagic);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(4), error);
        BinaryPrimitives.WriteUInt64BigEndian(b.AsSpan(8), cookie);
        return b;
    }

    /// <summary>A structured chunk: header and payload.</summary>
    public static byte[] Chunk(ulong cookie, ushort type, bool done, byte[] payload, uint? length = null)
    {
        var b = new byte[20 + payload.Length];
        BinaryPrimitives.WriteUInt32BigEndian(b, NbdProtocol.StructuredReplyMagic);
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(4), done ? NbdProtocol.ReplyFlagDone : (ushort)0);
        BinaryPrimitives.WriteUInt16BigEndian(b.AsSpan(6), type);
        BinaryPrimitives.WriteUInt64BigEndian(b.AsSpan(8), cookie);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(16), length ?? (uint)payload.Length);
        payload.CopyTo(b, 20);
        return b;
    }

    /// <summary>An OFFSET_DATA chunk of <paramref name="count"/> bytes of <paramref name="value"/> at <paramref name="offset"/>.</summary>
    public static byte[] Data(ulong cookie, ulong offset, int count, byte value, bool done = true)
    {
        var payload = new byte[8 + count];
        BinaryPrimitives.WriteUInt64BigEndian(payload, offset);
        payload.AsSpan(8).Fill(value);
        return Chunk(cookie, NbdProtocol.ReplyTypeOffsetData, done, payload);
    }

    /// <summary>An ERROR chunk.</summary>
    public static byte[] Error(ulong cookie, uint error, string message, bool done = true)
    {
        var text = System.Text.Encoding.UTF8.GetBytes(message);
        var payload = new byte[6 + text.Length];
        BinaryPrimitives.WriteUInt32BigEndian(payload, error);
        BinaryPrimitives.WriteUInt16BigEndian(payload.AsSpan(4), (ushort)text.Length);
        text.CopyTo(payload, 6);
        return Chunk(cookie, NbdProtocol.ReplyTypeError, done, payload);
    }

    /// <summary>Closes the connection from the server's side.</summary>
    public void Drop()
    {
        _peer?.Shutdown(SocketShutdown.Both);
        _peer?.Close();
    }

    public async ValueTask DisposeAsync()
    {
        if (_stream != null)
            await _stream.DisposeAsync();
        _peer?.Dispose();
        _listener.Dispose();
        _dir.Dispose();
    }
}
