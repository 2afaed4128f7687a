using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;
using Block.Nbd.Protocol;

namespace Block.Nbd.Tests;

/// <summary>A hand-driven NBD client for tests that must send what no real client sends.</summary>
internal sealed class RawNbdClient : IDisposable
{
    private readonly Socket _socket;
    private Stream _stream;

    private RawNbdClient(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true) { ReadTimeout = 60_000 };
    }

    public static RawNbdClient Connect(string path)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.Connect(new UnixDomainSocketEndPoint(path));
        return new RawNbdClient(socket);
    }

    public ushort TransmissionFlags { get; private set; }

    public ulong Size { get; private set; }

    public void Send(ReadOnlySpan<byte> bytes) => _stream.Write(bytes);

    public byte[] Receive(int count)
    {
        var buffer = new byte[count];
        _stream.ReadExactly(buffer);
        return buffer;
    }

    /// <summary>True when the server has closed the connection (a read returns end of stream).</summary>
    public bool IsClosedByServer()
    {
        try
        {
            return _stream.Read(new byte[1]) == 0;
        }
        catch (IOException)
        {
            return true;
        }
    }

    public void ReadGreeting()
    {
        var greeting = Receive(18);
        Assert.Equal(NbdProtocol.NbdMagic, BinaryPrimitives.ReadUInt64BigEndian(greeting));
        Assert.Equal(NbdProtocol.OptionMagic, BinaryPrimitives.ReadUInt64BigEndian(greeting.AsSpan(8)));
    }

    /// <summary>
    /// Sends the option header and its data in one write. A server may hang up as soon as it has read the header
    /// (qemu-nbd does for EXPORT_NAME when TLS is required), and a second write would then fail with a broken pipe.
    /// </summary>
    public void SendOption(uint option, ReadOnlySpan<byte> data)
    {
        var message = new byte[16 + data.Length];
        BinaryPrimitives.WriteUInt64BigEndian(message, NbdProtocol.OptionMagic);
        BinaryPrimitives.WriteUInt32BigEndian(message.AsSpan(8), option);
        BinaryPrimitives.WriteUInt32BigEndian(message.AsSpan(12), (uint)data.Length);
        data.CopyTo(message.AsSpan(16));
        Send(message);
    }

    public (uint Type, byte[] Data) ReceiveOptionReply()
    {
        var header = Receive(20);
        Assert.Equal(NbdProtocol.OptionReplyMagic, BinaryPrimitives.ReadUInt64BigEndian(header));
        uint type = BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(12));
        return (type, Receive((int)BinaryPrimitives.ReadUInt32BigEndian(header.AsSpan(16))));
    }

    /// <summary>Greeting, client flags, structured replies, base:allocation, then GO on <paramref name="export"/>.</summary>
    public void Negotiate(string export)
    {
        ReadGreeting();
        Send([0, 0, 0, 3]);
        NegotiateOptions(export);
    }

    /// <summary>
    /// Greeting, client flags, STARTTLS, and the TLS handshake with the client certificate of
    /// <paramref name="clientDirectory"/> (a <c>tls-creds-x509</c> directory; none when it has no certificate).
    /// </summary>
    public void StartTls(string clientDirectory)
    {
        ReadGreeting();
        Send([0, 0, 0, 3]);
        SendOption(NbdProtocol.OptStartTls, []);
        Assert.Equal(NbdProtocol.RepAck, ReceiveOptionReply().Type);
        var tls = new System.Net.Security.SslStream(_stream, leaveInnerStreamOpen: false);
        var options = new System.Net.Security.SslClientAuthenticationOptions
        {
            TargetHost = "localhost",
            RemoteCertificateValidationCallback = (_, _, _, _) => true,
        };
        string certificate = Path.Combine(clientDirectory, "client-cert.pem");
        if (File.Exists(certificate))
            options.ClientCertificates = [System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPemFile(certificate, Path.Combine(clientDirectory, "client-key.pem"))];
        tls.AuthenticateAsClient(options);
        _stream = tls;
    }

    /// <summary>Structured replies, base:allocation, then GO on <paramref name="export"/> (after the greeting).</summary>
    public void NegotiateOptions(string export)
    {
        SendOption(NbdProtocol.OptStructuredReply, []);
        Assert.Equal(NbdProtocol.RepAck, ReceiveOptionReply().Type);

        var name = Encoding.UTF8.GetBytes(export);
        var context = Encoding.UTF8.GetBytes(NbdProtocol.BaseAllocation);
        var meta = new byte[4 + name.Length + 4 + 4 + context.Length];
        BinaryPrimitives.WriteUInt32BigEndian(meta, (uint)name.Length);
        name.CopyTo(meta, 4);
        BinaryPrimitives.WriteUInt32BigEndian(meta.AsSpan(4 + name.Length), 1);
        BinaryPrimitives.WriteUInt32BigEndian(meta.AsSpan(8 + name.Length), (uint)context.Length);
        context.CopyTo(meta, 12 + name.Length);
        SendOption(NbdProtocol.OptSetMetaContext, meta);
        Assert.Equal(NbdProtocol.RepMetaContext, ReceiveOptionReply().Type);
        Assert.Equal(NbdProtocol.RepAck, ReceiveOptionReply().Type);

        var go = new byte[4 + name.Length + 2];
        BinaryPrimitives.WriteUInt32BigEndian(go, (uint)name.Length);
        name.CopyTo(go, 4);
        SendOption(NbdProtocol.OptGo, go);
        while (true)
        {
            var (type, data) = ReceiveOptionReply();
            if (type == NbdProtocol.RepAck)
                return;
            Assert.Equal(NbdProtocol.RepInfo, type);
            if (BinaryPrimitives.ReadUInt16BigEndian(data) == NbdProtocol.InfoExport)
            {
                Size = BinaryPrimitives.ReadUInt64BigEndian(data.AsSpan(2));
                TransmissionFlags = BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(10));
            }
        }
    }

    public void SendRequest(ushort type, ulong cookie, ulong offset, uint length, ushort flags = 0, ReadOnlySpan<byte> payload = default)
    {
        var message = new byte[NbdProtocol.RequestHeaderSize + payload.Length];
        new NbdRequest(flags, type, cookie, offset, length).Write(message);
        payload.CopyTo(message.AsSpan(NbdProtocol.RequestHeaderSize));
        Send(message);
    }

    /// <summary>Reads one reply (simple, or one structured chunk): cookie, error (0 for data chunks), chunk type, payload.</summary>
    public (ulong Cookie, uint Error, ushort ChunkType, byte[] Payload) ReceiveReply(int simpleDataLength = 0)
    {
        var magic = Receive(4);
        uint m = BinaryPrimitives.ReadUInt32BigEndian(magic);
        if (m == NbdProtocol.SimpleReplyMagic)
        {
            var rest = Receive(12);
            uint error = BinaryPrimitives.ReadUInt32BigEndian(rest);
            ulong cookie = BinaryPrimitives.ReadUInt64BigEndian(rest.AsSpan(4));
            return (cookie, error, ushort.MaxValue, error == 0 ? Receive(simpleDataLength) : []);
        }
        Assert.Equal(NbdProtocol.StructuredReplyMagic, m);
        var chunk = Receive(16);
        ushort chunkType = BinaryPrimitives.ReadUInt16BigEndian(chunk.AsSpan(2));
        ulong chunkCookie = BinaryPrimitives.ReadUInt64BigEndian(chunk.AsSpan(4));
        var payload = Receive((int)BinaryPrimitives.ReadUInt32BigEndian(chunk.AsSpan(12)));
        uint chunkError = chunkType == NbdProtocol.ReplyTypeError ? BinaryPrimitives.ReadUInt32BigEndian(payload) : 0;
        return (chunkCookie, chunkError, chunkType, payload);
    }

    public void Dispose() => _stream.Dispose();
}
