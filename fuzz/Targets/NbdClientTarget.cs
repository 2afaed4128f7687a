using System.Buffers.Binary;
using Block.Nbd.Client;

namespace Block.Fuzz.Targets;

/// <summary>
/// Our NBD client against a server that sends the input: a big-endian u16 length, that many handshake bytes
/// (greeting and option replies), then the transmission replies. Once the handshake is done the client starts five
/// requests (two reads, a block status, a write, a flush; their cookies are 0x10000, 0x20001, … 0x50004) and only
/// then are the replies read, so the reply parser meets every chunk against known requests. Each request may only
/// fail with a <see cref="BlockException"/>; any other exception, or a request still pending once the input has
/// ended, is a finding.
/// </summary>
public sealed class NbdClientTarget : IFuzzTarget
{
    /// <inheritdoc />
    public string Name => "nbd-client";

    /// <inheritdoc />
    public void Run(ReadOnlySpan<byte> input) => RunAsync(input.ToArray()).GetAwaiter().GetResult();

    private static async Task RunAsync(byte[] input)
    {
        int split = input.Length < 2 ? input.Length : Math.Min(input.Length, 2 + BinaryPrimitives.ReadUInt16BigEndian(input));
        await using var stream = new ServerStream(input, Math.Min(2, input.Length), split);
        NbdClient client;
        try
        {
            client = await NbdClient.ConnectAsync(stream, new NbdClientOptions()).WaitAsync(TimeSpan.FromSeconds(30));
        }
        catch (BlockException)
        {
            return;
        }
        await using (client)
        {
            var read1 = new byte[4096];
            var read2 = new byte[8192];
            var requests = new List<Task>
            {
                client.ReadAsync(0, read1.AsMemory()).AsTask(),
                client.ReadAsync(65536, read2.AsMemory()).AsTask(),
                client.Export.BaseAllocationContext is null ? Task.CompletedTask : client.BlockStatusAsync(0, 1 << 20).AsTask(),
                client.WriteAsync(0, new byte[512].AsMemory(), fua: false).AsTask(),
                client.FlushAsync().AsTask(),
            };
            stream.OpenReplies();
            foreach (var request in requests)
            {
                try
                {
                    await request.WaitAsync(TimeSpan.FromSeconds(30));
                }
                catch (BlockException)
                {
                    // The server's error, or a protocol error that killed the connection: both are answers.
                }
            }
        }
    }

    /// <summary>
    /// The server's side: the handshake bytes at once; the reply bytes only after <see cref="OpenReplies"/> (or when
    /// the handshake wants more than it was given); then end of stream. What the client sends is dropped.
    /// </summary>
    private sealed class ServerStream(byte[] input, int start, int split) : Stream
    {
        private readonly TaskCompletionSource _open = new(TaskCreationOptions.RunContinuationsAsynchronously);

        // Every read and write here completes at once, so the handshake runs to its end on the thread that started
        // it; the client's receive loop reads on another, and waits for OpenReplies.
        private readonly int _handshakeThread = Environment.CurrentManagedThreadId;
        private int _position = start;

        public void OpenReplies() => _open.TrySetResult();

        public override bool CanRead => true;

        public override bool CanWrite => true;

        public override bool CanSeek => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush()
        {
        }

        public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            if (Environment.CurrentManagedThreadId == _handshakeThread)
                return Take(buffer, _position < split ? split : input.Length);
            await _open.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
            return Take(buffer, input.Length);
        }

        private int Take(Memory<byte> buffer, int end)
        {
            int n = Math.Min(buffer.Length, end - _position);
            input.AsSpan(_position, n).CopyTo(buffer.Span);
            _position += n;
            return n;
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count)
        {
        }

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => default;
    }
}
