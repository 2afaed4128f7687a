using System.IO.Pipes;
using System.Text;
using Block.TestSupport;

namespace Block.Qmp.Tests;

/// <summary>
/// The test support's QMP client against a scripted server: a greeting repeated before the reply (as
/// qemu-storage-daemon 7.2 once sent it) is taken as part of the connection only where the caller allows it, and
/// every later command still gets its own reply.
/// </summary>
public sealed class QmpTestClientTests
{
    private const string Greeting = "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 2, \"major\": 7}, \"package\": \"\"}, \"capabilities\": [\"oob\"]}}\n";

    /// <summary>A server that greets twice, then answers each command line with <c>{"return": N}</c>, N counting from 0.</summary>
    private static async Task<QmpClient> ConnectToDoubleGreeterAsync()
    {
        var server = new AnonymousPipeServerStream(PipeDirection.Out);
        var client = new AnonymousPipeServerStream(PipeDirection.Out);
        var toClient = new AnonymousPipeClientStream(PipeDirection.In, server.ClientSafePipeHandle);
        var fromClient = new AnonymousPipeClientStream(PipeDirection.In, client.ClientSafePipeHandle);
        _ = Task.Run(async () =>
        {
            await server.WriteAsync(Encoding.UTF8.GetBytes(Greeting + Greeting));
            using var reader = new StreamReader(fromClient);
            for (int n = 0; await reader.ReadLineAsync() is not null; n++)
                await server.WriteAsync(Encoding.UTF8.GetBytes($"{{\"return\": {n}}}\n"));
        });
        return await QmpClient.ConnectAsync(new DuplexStream(toClient, client));
    }

    [Fact]
    public async Task A_repeated_greeting_is_taken_with_the_connection_where_allowed_and_replies_stay_in_step()
    {
        await using var qmp = await ConnectToDoubleGreeterAsync();
        await qmp.NegotiateAsync(allowRepeatedGreeting: true);
        Assert.Equal(1, (int)(await qmp.ExecuteOkAsync("query-version"))!);
    }

    [Fact]
    public async Task A_repeated_greeting_fails_negotiation_where_it_is_not_allowed()
    {
        await using var qmp = await ConnectToDoubleGreeterAsync();
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => qmp.NegotiateAsync());
        Assert.StartsWith("qmp_capabilities failed: {\"QMP\"", e.Message, StringComparison.Ordinal);
    }

    /// <summary>Reads from one pipe and writes to another.</summary>
    private sealed class DuplexStream(Stream input, Stream output) : Stream
    {
        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Flush() => output.Flush();

        public override int Read(byte[] buffer, int offset, int count) => input.Read(buffer, offset, count);

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => input.ReadAsync(buffer, cancellationToken);

        public override void Write(byte[] buffer, int offset, int count) => output.Write(buffer, offset, count);

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => output.WriteAsync(buffer, cancellationToken);

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                input.Dispose();
                output.Dispose();
            }
            base.Dispose(disposing);
        }
    }
}
