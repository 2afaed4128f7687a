using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;

namespace Block.Qmp.Tests;

/// <summary>
/// A bare QMP connection for sending texts that are not well-formed requests: what a text produces is every
/// message up to the reply to a sentinel command sent after it.
/// </summary>
public sealed class RawQmpConnection : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly StreamReader _reader;

    private RawQmpConnection(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _reader = new StreamReader(_stream, Encoding.UTF8);
    }

    public JsonObject Greeting { get; private set; } = new();

    public static async Task<RawQmpConnection> ConnectAsync(string path, bool negotiate = true)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(path));
        var connection = new RawQmpConnection(socket);
        connection.Greeting = (JsonObject)JsonNode.Parse((await connection.ReadLineAsync())!)!;
        if (negotiate)
            await connection.ExchangeAsync("{\"execute\":\"qmp_capabilities\"}");
        return connection;
    }

    /// <summary>Sends <paramref name="text"/> then a sentinel; returns the messages before the sentinel's reply.</summary>
    public Task<List<JsonObject>> ExchangeAsync(string text) => ExchangeBytesAsync(Encoding.UTF8.GetBytes(text));

    /// <summary>Sends <paramref name="bytes"/> then a line end and a sentinel; returns the messages before the sentinel's reply.</summary>
    public async Task<List<JsonObject>> ExchangeBytesAsync(byte[] bytes)
    {
        await _stream.WriteAsync(bytes);
        await _stream.WriteAsync("\n{\"execute\":\"query-version\",\"id\":\"sentinel\"}\n"u8.ToArray());
        var messages = new List<JsonObject>();
        while (true)
        {
            string line = await ReadLineAsync() ?? throw new IOException("the server closed the connection");
            var message = (JsonObject)JsonNode.Parse(line)!;
            if (message["id"] is JsonValue id && id.GetValueKind() == System.Text.Json.JsonValueKind.String && id.GetValue<string>() == "sentinel")
                return messages;
            messages.Add(message);
        }
    }

    private async Task<string?> ReadLineAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        return await _reader.ReadLineAsync(cts.Token);
    }

    public ValueTask DisposeAsync()
    {
        _reader.Dispose();
        _socket.Dispose();
        return ValueTask.CompletedTask;
    }
}
