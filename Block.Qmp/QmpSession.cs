using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Block.Qapi;
using Block.Qmp.Wire;

namespace Block.Qmp;

/// <summary>
/// One QMP conversation over a stream: the greeting, capabilities negotiation, commands answered in order with their
/// <c>id</c>, and the server's events once negotiation is over.
/// </summary>
/// <remarks>
/// <para>
/// A session works over any <see cref="Stream"/> (a socket, a pipe, an in-memory duplex), so a VMM can serve QMP on
/// its own transport. Replies and events leave through one queue and one writer, so a message is never cut by
/// another. Events reach a slow client through a bounded queue; a client that falls
/// <see cref="QmpServerOptions.MaxQueuedMessages"/> messages behind is disconnected rather than allowed to grow the
/// daemon's memory.
/// </para>
/// <para>
/// Nothing a client sends ends the session but the end of its stream: malformed JSON, wrong members, unknown
/// commands and failing commands all get an error reply, and the next text is read as usual.
/// </para>
/// </remarks>
public sealed class QmpSession
{
    private static readonly byte[] LineEnd = "\r\n"u8.ToArray();

    private readonly QmpServer _server;
    private readonly Stream _stream;
    private readonly Channel<string> _output;
    private readonly CancellationTokenSource _closed = new();
    private readonly bool _pretty;
    private volatile bool _commandMode;
    private Action? _afterReply;

    internal QmpSession(QmpServer server, Stream stream, bool pretty)
    {
        _server = server;
        _stream = stream;
        _pretty = pretty;
        _output = Channel.CreateBounded<string>(new BoundedChannelOptions(server.Options.MaxQueuedMessages)
        {
            SingleReader = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
    }

    /// <summary>True once <c>qmp_capabilities</c> has succeeded: commands run and events are delivered.</summary>
    public bool IsCommandMode => _commandMode;

    /// <summary>Greets the client and serves it until its stream ends, the server stops, or the token is cancelled.</summary>
    public async Task RunAsync(CancellationToken cancellationToken = default)
    {
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _closed.Token);
        var token = linked.Token;
        // The writer outlives the reader and ignores cancellation: what is queued when reading stops (the reply to
        // quit) still goes out. It ends when the queue is completed and empty, or when DrainAsync gives up on a client
        // that does not read and closes its stream.
        var writer = WriteLoopAsync(CancellationToken.None);
        _server.AddSession(this);
        try
        {
            await SendAsync(_server.Greeting(), token).ConfigureAwait(false);
            await ReadLoopAsync(token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
        }
        catch (IOException)
        {
            // The client went away mid-read.
        }
        catch (ObjectDisposedException)
        {
        }
        catch (ChannelClosedException)
        {
            // The output was closed under an overloaded client.
        }
        finally
        {
            _server.RemoveSession(this);
            _output.Writer.TryComplete();
            await DrainAsync(writer).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Ends the session: reading stops, and what is already queued is written out (within
    /// <see cref="DrainTimeout"/>; a client that does not read has its stream closed).
    /// </summary>
    public void Close() => _closed.Cancel();

    /// <summary>How long queued output may take to reach the client once the session ends.</summary>
    internal static TimeSpan DrainTimeout { get; } = TimeSpan.FromSeconds(5);

    private async Task DrainAsync(Task writer)
    {
        try
        {
            await writer.WaitAsync(DrainTimeout).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // Break the stuck write.
            await _stream.DisposeAsync().ConfigureAwait(false);
            await IgnoreFailureAsync(writer).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or OperationCanceledException)
        {
        }
    }

    private static async Task IgnoreFailureAsync(Task task)
    {
        try
        {
            await task.ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or OperationCanceledException)
        {
        }
    }

    /// <summary>Queues an event; a client too far behind is disconnected.</summary>
    internal void PostEvent(JsonObject message)
    {
        if (!_commandMode)
            return;
        if (!_output.Writer.TryWrite(Format(message)) && !_closed.IsCancellationRequested)
        {
            _output.Writer.TryComplete();
            Close();
        }
    }

    private async Task ReadLoopAsync(CancellationToken token)
    {
        var reader = new QmpMessageReader(_server.Options.ReaderLimits);
        var inputs = new List<QmpInput>();
        byte[] buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        try
        {
            while (true)
            {
                int n = await _stream.ReadAsync(buffer, token).ConfigureAwait(false);
                if (n == 0)
                {
                    reader.Finish(inputs);
                    await HandleAllAsync(inputs, token).ConfigureAwait(false);
                    return;
                }
                reader.Feed(buffer.AsSpan(0, n), inputs);
                await HandleAllAsync(inputs, token).ConfigureAwait(false);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private async Task HandleAllAsync(List<QmpInput> inputs, CancellationToken token)
    {
        foreach (var input in inputs)
        {
            var reply = await HandleAsync(input, token).ConfigureAwait(false);
            await SendAsync(reply, token).ConfigureAwait(false);
            if (_afterReply is { } action)
            {
                _afterReply = null;
                action();
            }
        }
        inputs.Clear();
    }

    /// <summary>Runs <paramref name="action"/> once the reply to the command being handled is queued.</summary>
    internal void RunAfterReply(Action action) => _afterReply = action;

    private async ValueTask<JsonObject> HandleAsync(QmpInput input, CancellationToken token)
    {
        if (input.Error != null)
            return ErrorReply(QmpErrorClass.GenericError, input.Error, id: null);
        if (input.Value is not JsonObject request)
            return ErrorReply(QmpErrorClass.GenericError, "QMP input must be a JSON object", id: null);

        // The id is echoed even on errors about the rest of the request.
        var id = request["id"]?.DeepClone();
        try
        {
            string name = ParseRequest(request);
            var arguments = request["arguments"] as JsonObject ?? [];
            JsonNode? result;
            if (name == "qmp_capabilities")
            {
                result = NegotiateCapabilities(arguments);
            }
            else
            {
                if (!_commandMode)
                    throw new QmpException(QmpErrorClass.CommandNotFound, "Expecting capabilities negotiation with 'qmp_capabilities'");
                // The handler owns the arguments from here (they may be parsed in place).
                request.Remove("arguments");
                result = await _server.ExecuteAsync(name, arguments, this, token).ConfigureAwait(false);
            }
            var reply = new JsonObject { ["return"] = result ?? new JsonObject() };
            if (id != null)
                reply["id"] = id;
            return reply;
        }
        catch (BlockException e)
        {
            return ErrorReply(e.ErrorClass, e.Message, id);
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            throw;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            // A bug in a handler fails that command, never the daemon or the other clients.
            _server.ReportHandlerFailure(e);
            return ErrorReply(QmpErrorClass.GenericError, e.Message, id);
        }
    }

    /// <summary>The command name of a request, after QEMU's checks of its members.</summary>
    private static string ParseRequest(JsonObject request)
    {
        foreach (var (key, _) in request)
        {
            if (key is not ("execute" or "arguments" or "id"))
                throw new BlockOptionsException($"QMP input member '{key}' is unexpected");
        }
        var execute = request["execute"];
        if (execute is null && !request.ContainsKey("execute"))
            throw new BlockOptionsException("QMP input lacks member 'execute'");
        if (execute is not JsonValue v || v.GetValueKind() != JsonValueKind.String)
            throw new BlockOptionsException("QMP input member 'execute' must be a string");
        if (request.ContainsKey("arguments") && request["arguments"] is not JsonObject)
            throw new BlockOptionsException("QMP input member 'arguments' must be an object");
        return v.GetValue<string>();
    }

    private JsonObject NegotiateCapabilities(JsonObject arguments)
    {
        // Arguments are checked first, as for any command.
        // The seed's qmp_capabilities takes no arguments; QEMU 2.12 added 'enable', which lists capabilities from the
        // greeting. The greeting offers none, so only an empty list is accepted.
        foreach (var (key, value) in arguments)
        {
            if (key != "enable")
                throw new BlockOptionsException($"Parameter '{key}' is unexpected");
            if (value is not JsonArray list)
                throw new BlockOptionsException("Invalid parameter type for 'enable', expected: array");
            foreach (var item in list)
            {
                string capability = item is JsonValue s && s.GetValueKind() == JsonValueKind.String
                    ? s.GetValue<string>()
                    : throw new BlockOptionsException("Invalid parameter type for 'enable[0]', expected: string");
                throw new BlockOptionsException($"Capability '{capability}' not available");
            }
        }
        if (_commandMode)
            throw new QmpException(QmpErrorClass.CommandNotFound, "Capabilities negotiation is already complete, command ignored");
        _commandMode = true;
        return [];
    }

    private static JsonObject ErrorReply(QmpErrorClass errorClass, string desc, JsonNode? id)
    {
        var reply = new JsonObject
        {
            ["error"] = new JsonObject
            {
                ["class"] = errorClass.ToString(),
                ["desc"] = desc,
            },
        };
        if (id != null)
            reply["id"] = id;
        return reply;
    }

    private ValueTask SendAsync(JsonObject message, CancellationToken token) =>
        _output.Writer.WriteAsync(Format(message), token);

    private string Format(JsonObject message) => _pretty ? QemuJson.Pretty(message) : QemuJson.Compact(message);

    private async Task WriteLoopAsync(CancellationToken token)
    {
        var bytes = new ArrayBufferWriter<byte>(4096);
        var reader = _output.Reader;
        while (await reader.WaitToReadAsync(token).ConfigureAwait(false))
        {
            // Write everything queued, then flush once.
            while (reader.TryRead(out string? text))
            {
                bytes.ResetWrittenCount();
                Encoding.UTF8.GetBytes(text, bytes);
                bytes.Write(LineEnd);
                await _stream.WriteAsync(bytes.WrittenMemory, token).ConfigureAwait(false);
            }
            await _stream.FlushAsync(token).ConfigureAwait(false);
        }
    }
}
