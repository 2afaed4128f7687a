using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;

namespace Block.TestSupport;

/// <summary>
/// A QMP client for tests: reads the greeting, negotiates, runs commands one at a time and collects events, over any
/// <see cref="Stream"/> (a unix socket to qemu-storage-daemon or <c>blk serve</c>, or an in-process pipe).
/// </summary>
/// <remarks>
/// A background reader splits the server's output into JSON texts and routes them: objects with an <c>event</c>
/// member go to the event queue, everything else is the reply to the oldest command waiting. QMP answers commands in
/// order, so events interleaved with replies, before or after them, never confuse the two. Every wait has a timeout,
/// so a silent server fails the test instead of hanging it.
/// </remarks>
public sealed class QmpClient : IAsyncDisposable
{
    /// <summary>How long a command waits for its reply unless told otherwise.</summary>
    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromSeconds(60);

    private readonly Stream _stream;
    private readonly Channel<JsonObject> _replies = Channel.CreateUnbounded<JsonObject>();
    private readonly List<JsonObject> _events = [];
    private readonly SemaphoreSlim _commandGate = new(1, 1);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _reader;
    private TaskCompletionSource _eventArrived = NewSignal();
    private Exception? _readFailure;

    private QmpClient(Stream stream)
    {
        _stream = stream;
        _reader = Task.Run(ReadLoopAsync);
    }

    /// <summary>The server's greeting (<c>{"QMP": {"version": …, "capabilities": […]}}</c>).</summary>
    public JsonObject Greeting { get; private set; } = new();

    /// <summary>True once the server closed the connection (or reading it failed).</summary>
    public bool IsClosed => _reader.IsCompleted;

    /// <summary>Connects over <paramref name="stream"/> and reads the greeting. The client owns the stream.</summary>
    public static async Task<QmpClient> ConnectAsync(Stream stream, TimeSpan? timeout = null)
    {
        var client = new QmpClient(stream);
        try
        {
            var greeting = await client.NextReplyAsync(timeout ?? DefaultTimeout, "the greeting").ConfigureAwait(false);
            if (greeting["QMP"] is not JsonObject)
                throw new InvalidOperationException($"QMP server sent no greeting but {greeting.ToJsonString()}");
            client.Greeting = greeting;
            return client;
        }
        catch
        {
            await client.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Connects to the unix socket at <paramref name="path"/> and reads the greeting.</summary>
    public static async Task<QmpClient> ConnectUnixAsync(string path, TimeSpan? timeout = null)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(path)).ConfigureAwait(false);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        return await ConnectAsync(new NetworkStream(socket, ownsSocket: true), timeout).ConfigureAwait(false);
    }

    /// <summary>Sends <c>qmp_capabilities</c>; throws if the server refuses it.</summary>
    /// <param name="timeout">How long to wait for the reply.</param>
    /// <param name="allowRepeatedGreeting">
    /// Take a second copy of the greeting, arriving before the reply, as part of the connection. Only for QEMU's
    /// daemon: qemu-storage-daemon 7.2, connected to while it still sets up its monitors, once sent its greeting twice
    /// on one connection (a clean-clone run, 6 Dec 2026). Our own server must never do that, so it is not allowed there.
    /// </param>
    public async Task NegotiateAsync(TimeSpan? timeout = null, bool allowRepeatedGreeting = false)
    {
        var reply = await ExecuteAsync("qmp_capabilities", timeout: timeout).ConfigureAwait(false);
        if (allowRepeatedGreeting && JsonNode.DeepEquals(reply, Greeting))
            reply = await NextReplyAsync(timeout ?? DefaultTimeout, "qmp_capabilities").ConfigureAwait(false);
        if (reply["return"] is null)
            throw new InvalidOperationException($"qmp_capabilities failed: {reply.ToJsonString()}");
    }

    /// <summary>
    /// Runs <paramref name="command"/> with <paramref name="arguments"/> and returns the whole reply object:
    /// <c>{"return": …}</c> or <c>{"error": {"class": …, "desc": …}}</c>, with <c>id</c> when one was given.
    /// </summary>
    public Task<JsonObject> ExecuteAsync(string command, JsonObject? arguments = null, JsonNode? id = null, TimeSpan? timeout = null)
    {
        var message = new JsonObject { ["execute"] = command };
        if (arguments != null)
            message["arguments"] = arguments.DeepClone();
        if (id != null)
            message["id"] = id.DeepClone();
        return SendAsync(message.ToJsonString() + "\n", timeout, command);
    }

    /// <summary>
    /// Runs <paramref name="command"/> and returns its <c>return</c> value; throws <see cref="QmpErrorException"/>
    /// with the error's class and text if the server answered with an error.
    /// </summary>
    public async Task<JsonNode?> ExecuteOkAsync(string command, JsonObject? arguments = null, TimeSpan? timeout = null)
    {
        var reply = await ExecuteAsync(command, arguments, timeout: timeout).ConfigureAwait(false);
        if (reply["error"] is JsonObject error)
            throw new QmpErrorException(command, (string?)error["class"] ?? "", (string?)error["desc"] ?? "");
        return reply["return"];
    }

    /// <summary>
    /// Sends <paramref name="text"/> as it is (malformed JSON, several objects, a missing line end…) and returns the
    /// next reply the server sends.
    /// </summary>
    public Task<JsonObject> SendRawAsync(string text, TimeSpan? timeout = null) => SendAsync(text, timeout, "raw text");

    /// <summary>
    /// Waits for the first event named <paramref name="name"/> not taken yet and takes it from the queue (events that
    /// came before it stay queued).
    /// </summary>
    /// <exception cref="TimeoutException">No such event came in <paramref name="timeout"/>.</exception>
    public async Task<JsonObject> WaitEventAsync(string name, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? DefaultTimeout);
        while (true)
        {
            Task signal;
            lock (_events)
            {
                int index = _events.FindIndex(e => (string?)e["event"] == name);
                if (index >= 0)
                {
                    var e = _events[index];
                    _events.RemoveAt(index);
                    return e;
                }
                signal = _eventArrived.Task;
            }
            if (_reader.IsCompleted)
                throw Closed($"event {name}");
            try
            {
                await Task.WhenAny(signal, _reader).WaitAsync(cts.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"no {name} event in {timeout ?? DefaultTimeout}; queued: {string.Join(", ", Events.Select(e => (string?)e["event"]))}");
            }
        }
    }

    /// <summary>The events received and not yet taken, in arrival order.</summary>
    public IReadOnlyList<JsonObject> Events
    {
        get
        {
            lock (_events)
                return [.. _events];
        }
    }

    /// <summary>Takes every queued event.</summary>
    public IReadOnlyList<JsonObject> TakeEvents()
    {
        lock (_events)
        {
            var all = _events.ToList();
            _events.Clear();
            return all;
        }
    }

    /// <summary>Closes the connection.</summary>
    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        await _stream.DisposeAsync().ConfigureAwait(false);
        try
        {
            await _reader.ConfigureAwait(false);
        }
        catch (Exception)
        {
            // The reader ends with the stream; how it ended does not matter any more.
        }
        _stop.Dispose();
        _commandGate.Dispose();
    }

    private async Task<JsonObject> SendAsync(string text, TimeSpan? timeout, string what)
    {
        var limit = timeout ?? DefaultTimeout;
        if (!await _commandGate.WaitAsync(limit).ConfigureAwait(false))
            throw new TimeoutException($"{what}: another command did not finish in {limit}");
        try
        {
            var bytes = Encoding.UTF8.GetBytes(text);
            await _stream.WriteAsync(bytes).ConfigureAwait(false);
            await _stream.FlushAsync().ConfigureAwait(false);
            return await NextReplyAsync(limit, what).ConfigureAwait(false);
        }
        finally
        {
            _commandGate.Release();
        }
    }

    private async Task<JsonObject> NextReplyAsync(TimeSpan timeout, string what)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            return await _replies.Reader.ReadAsync(cts.Token).ConfigureAwait(false);
        }
        catch (ChannelClosedException)
        {
            throw Closed(what);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException($"no reply to {what} in {timeout}");
        }
    }

    private InvalidOperationException Closed(string what) =>
        new($"the QMP connection closed while waiting for {what}", _readFailure);

    private async Task ReadLoopAsync()
    {
        var buffer = new byte[64 * 1024];
        var pending = new MemoryStream();
        try
        {
            while (true)
            {
                int n = await _stream.ReadAsync(buffer, _stop.Token).ConfigureAwait(false);
                if (n == 0)
                    break;
                pending.Write(buffer, 0, n);
                Split(pending);
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException or OperationCanceledException or SocketException or JsonException)
        {
            _readFailure = e;
        }
        finally
        {
            _replies.Writer.TryComplete();
            lock (_events)
                _eventArrived.TrySetResult();
        }
    }

    /// <summary>Routes every complete JSON text at the start of <paramref name="pending"/> and keeps the rest.</summary>
    private void Split(MemoryStream pending)
    {
        var data = pending.GetBuffer().AsSpan(0, (int)pending.Length);
        int consumed = 0;
        while (true)
        {
            var rest = data[consumed..];
            int skip = 0;
            while (skip < rest.Length && rest[skip] is (byte)' ' or (byte)'\r' or (byte)'\n' or (byte)'\t')
                skip++;
            consumed += skip;
            rest = rest[skip..];
            if (rest.IsEmpty)
                break;
            var reader = new Utf8JsonReader(rest, isFinalBlock: false, state: default);
            if (!reader.Read() || !reader.TrySkip())
                break;
            int length = (int)reader.BytesConsumed;
            var node = JsonNode.Parse(rest[..length]);
            consumed += length;
            Route(node as JsonObject ?? new JsonObject { ["unexpected"] = node });
        }
        var left = data[consumed..].ToArray();
        pending.SetLength(0);
        pending.Write(left);
    }

    private void Route(JsonObject message)
    {
        if (message.ContainsKey("event"))
        {
            lock (_events)
            {
                _events.Add(message);
                var arrived = _eventArrived;
                _eventArrived = NewSignal();
                arrived.TrySetResult();
            }
            return;
        }
        _replies.Writer.TryWrite(message);
    }

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}

/// <summary>A QMP command answered with an error.</summary>
public sealed class QmpErrorException(string command, string errorClass, string description)
    : Exception($"{command} failed: {errorClass}: {description}")
{
    /// <summary>The command.</summary>
    public string Command { get; } = command;

    /// <summary>The error class (<c>GenericError</c>, <c>DeviceNotFound</c>…).</summary>
    public string ErrorClass { get; } = errorClass;

    /// <summary>The error's <c>desc</c>.</summary>
    public string Description { get; } = description;
}
