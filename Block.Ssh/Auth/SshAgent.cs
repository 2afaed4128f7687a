using System.Buffers.Binary;
using System.Net.Sockets;
using System.Text;

namespace Block.Ssh.Auth;

/// <summary>
/// A client of ssh-agent's protocol on the unix socket <c>SSH_AUTH_SOCK</c> names: it lists the agent's keys and asks
/// it to sign, so that private keys never leave the agent (the only keys QEMU's ssh driver uses).
/// </summary>
internal sealed class SshAgent : IDisposable
{
    private const byte Failure = 5;
    private const byte RequestIdentities = 11;
    private const byte IdentitiesAnswer = 12;
    private const byte SignRequest = 13;
    private const byte SignResponse = 14;

    /// <summary>Bounds an agent's answer, which holds at most a few hundred keys of a few KiB.</summary>
    private const int MaxMessage = 256 * 1024;

    private readonly Socket _socket;
    private readonly Lock _lock = new();

    private SshAgent(Socket socket) => _socket = socket;

    /// <summary>Connects to the agent at <paramref name="socketPath"/>.</summary>
    public static SshAgent Connect(string socketPath)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Connect(new UnixDomainSocketEndPoint(socketPath));
            return new SshAgent(socket);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>The agent's public keys, as SSH wire blobs.</summary>
    public IReadOnlyList<byte[]> ListKeys()
    {
        var reply = Exchange([RequestIdentities]);
        if (reply.Length == 0 || reply[0] != IdentitiesAnswer)
            throw new IOException("ssh-agent refused to list its keys");
        var reader = new WireReader(reply.AsMemory(1));
        uint count = reader.UInt32();
        var keys = new List<byte[]>();
        for (uint i = 0; i < count; i++)
        {
            keys.Add(reader.String().ToArray());
            reader.String();
        }
        return keys;
    }

    /// <summary>Signs <paramref name="data"/> with the key <paramref name="keyBlob"/>; <paramref name="flags"/> picks RSA's SHA-2 variant.</summary>
    public byte[] Sign(byte[] keyBlob, byte[] data, uint flags)
    {
        var request = new byte[1 + 4 + keyBlob.Length + 4 + data.Length + 4];
        request[0] = SignRequest;
        int at = WireReader.PutString(request, 1, keyBlob);
        at = WireReader.PutString(request, at, data);
        BinaryPrimitives.WriteUInt32BigEndian(request.AsSpan(at), flags);
        var reply = Exchange(request);
        if (reply.Length == 0 || reply[0] == Failure || reply[0] != SignResponse)
            throw new IOException("ssh-agent refused to sign");
        return new WireReader(reply.AsMemory(1)).String().ToArray();
    }

    private byte[] Exchange(byte[] message)
    {
        lock (_lock)
        {
            var header = new byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(header, (uint)message.Length);
            _socket.Send(header);
            _socket.Send(message);
            ReceiveExactly(header);
            uint length = BinaryPrimitives.ReadUInt32BigEndian(header);
            if (length > MaxMessage)
                throw new IOException($"ssh-agent sent a message of {length} bytes");
            var reply = new byte[length];
            ReceiveExactly(reply);
            return reply;
        }
    }

    private void ReceiveExactly(Span<byte> buffer)
    {
        while (buffer.Length > 0)
        {
            int n = _socket.Receive(buffer);
            if (n == 0)
                throw new IOException("ssh-agent closed the connection");
            buffer = buffer[n..];
        }
    }

    public void Dispose() => _socket.Dispose();

    /// <summary>Reads SSH wire <c>uint32</c> and <c>string</c> fields, refusing lengths past the end.</summary>
    internal struct WireReader(ReadOnlyMemory<byte> data)
    {
        private ReadOnlyMemory<byte> _data = data;

        public uint UInt32()
        {
            if (_data.Length < 4)
                throw new IOException("ssh-agent sent a truncated message");
            uint value = BinaryPrimitives.ReadUInt32BigEndian(_data.Span);
            _data = _data[4..];
            return value;
        }

        public ReadOnlyMemory<byte> String()
        {
            uint length = UInt32();
            if (length > (uint)_data.Length)
                throw new IOException("ssh-agent sent a truncated message");
            var value = _data[..(int)length];
            _data = _data[(int)length..];
            return value;
        }

        public static string TypeOf(byte[] blob) => Encoding.ASCII.GetString(new WireReader(blob).String().Span);

        public static int PutString(byte[] destination, int at, byte[] value)
        {
            BinaryPrimitives.WriteUInt32BigEndian(destination.AsSpan(at), (uint)value.Length);
            value.CopyTo(destination, at + 4);
            return at + 4 + value.Length;
        }
    }
}
