using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Block.Curl.Tests;

/// <summary>How <see cref="HostileHttpServer"/> answers a ranged GET.</summary>
public enum HostileMode
{
    /// <summary>A correct 206.</summary>
    Honest,

    /// <summary>HEAD without <c>Accept-Ranges</c>.</summary>
    NoAcceptRanges,

    /// <summary>HEAD without a length.</summary>
    NoLength,

    /// <summary>200 with the whole file, as a server that ignores Range does.</summary>
    WholeFile,

    /// <summary>206 naming and carrying a range 512 bytes later than asked for.</summary>
    OtherRange,

    /// <summary>206 whose body stops halfway and the connection closes.</summary>
    ShortBody,

    /// <summary>The connection closes after the headers.</summary>
    DropAfterHeaders,

    /// <summary>The connection closes without an answer.</summary>
    DropAtOnce,

    /// <summary>A 206 that claims the right range but carries 4 KiB more than it.</summary>
    LongBody,
}

/// <summary>
/// A tiny HTTP/1.1 server of the tests' own, on a loopback port, serving one in-memory file and lying about ranges
/// as told (<see cref="HostileMode"/>) for GETs; it records every request's head. With <see cref="HoldUntil"/> set,
/// it answers no GET until that many are waiting at once, which proves they are in flight together.
/// </summary>
internal sealed class HostileHttpServer : IDisposable
{
    private readonly TcpListener _listener;
    private readonly byte[] _file;
    private readonly CancellationTokenSource _stop = new();
    private readonly object _lock = new();
    private int _waiting;
    private TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public HostileHttpServer(byte[] file, HostileMode mode = HostileMode.Honest)
    {
        _file = file;
        Mode = mode;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start(64);
        _ = AcceptAsync();
    }

    public HostileMode Mode { get; set; }

    /// <summary>When positive, GETs are held until this many wait together.</summary>
    public int HoldUntil { get; set; }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public string Url => $"http://127.0.0.1:{Port}/disk.img";

    /// <summary>Every request head received, in order.</summary>
    public ConcurrentQueue<string> Requests { get; } = new();

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ObjectDisposedException or SocketException)
            {
                return;
            }
            _ = ServeAsync(client);
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        using var _ = client;
        try
        {
            var stream = client.GetStream();
            var reader = new StreamReader(stream, Encoding.Latin1);
            while (true)
            {
                var head = new StringBuilder();
                string? line;
                while (!string.IsNullOrEmpty(line = await reader.ReadLineAsync(_stop.Token)))
                    head.Append(line).Append('\n');
                if (head.Length == 0)
                    return;
                string text = head.ToString();
                Requests.Enqueue(text);
                if (!await AnswerAsync(stream, text))
                    return;
            }
        }
        catch (Exception e) when (e is IOException or OperationCanceledException or SocketException or ObjectDisposedException)
        {
            // The client went away or the server stops.
        }
    }

    /// <summary>Answers one request; false to close the connection.</summary>
    private async Task<bool> AnswerAsync(NetworkStream stream, string head)
    {
        bool isHead = head.StartsWith("HEAD ", StringComparison.Ordinal);
        if (isHead)
        {
            var h = new StringBuilder("HTTP/1.1 200 OK\r\n");
            if (Mode != HostileMode.NoLength)
                h.Append(CultureInfo.InvariantCulture, $"Content-Length: {_file.Length}\r\n");
            else
                h.Append("Transfer-Encoding: chunked\r\n");
            if (Mode != HostileMode.NoAcceptRanges)
                h.Append("Accept-Ranges: bytes\r\n");
            h.Append("\r\n");
            await stream.WriteAsync(Encoding.ASCII.GetBytes(h.ToString()), _stop.Token);
            return Mode != HostileMode.NoLength;
        }
        await HoldAsync();
        var (first, last) = ParseRange(head);
        switch (Mode)
        {
            case HostileMode.DropAtOnce:
                return false;
            case HostileMode.WholeFile:
                await SendAsync(stream, "200 OK", null, _file, 0, _file.Length);
                return true;
            case HostileMode.OtherRange:
                first = Math.Min(first + 512, _file.Length - 1);
                last = Math.Min(last + 512, _file.Length - 1);
                await SendAsync(stream, "206 Partial Content", (first, last), _file, first, (int)(last - first + 1));
                return true;
            case HostileMode.ShortBody:
            {
                int length = (int)(last - first + 1);
                await SendHeadAsync(stream, "206 Partial Content", (first, last), length);
                await stream.WriteAsync(_file.AsMemory((int)first, length / 2), _stop.Token);
                return false;
            }
            case HostileMode.DropAfterHeaders:
                await SendHeadAsync(stream, "206 Partial Content", (first, last), (int)(last - first + 1));
                return false;
            case HostileMode.LongBody:
            {
                int length = (int)Math.Min(last - first + 1 + 4096, _file.Length - first);
                await SendAsync(stream, "206 Partial Content", (first, last), _file, first, length);
                return false;
            }
            default:
                await SendAsync(stream, "206 Partial Content", (first, last), _file, first, (int)(last - first + 1));
                return true;
        }
    }

    private async Task HoldAsync()
    {
        if (HoldUntil <= 0)
            return;
        Task released;
        lock (_lock)
        {
            if (++_waiting >= HoldUntil)
            {
                _released.TrySetResult();
                _waiting = 0;
            }
            released = _released.Task;
        }
        await released.WaitAsync(TimeSpan.FromSeconds(60), _stop.Token);
    }

    private (long First, long Last) ParseRange(string head)
    {
        foreach (var line in head.Split('\n'))
        {
            if (!line.StartsWith("Range: bytes=", StringComparison.OrdinalIgnoreCase))
                continue;
            var parts = line["Range: bytes=".Length..].Trim().Split('-');
            long first = long.Parse(parts[0], CultureInfo.InvariantCulture);
            long last = parts[1].Length == 0 ? _file.Length - 1 : long.Parse(parts[1], CultureInfo.InvariantCulture);
            return (first, Math.Min(last, _file.Length - 1));
        }
        return (0, _file.Length - 1);
    }

    private async Task SendHeadAsync(NetworkStream stream, string status, (long First, long Last)? range, int length)
    {
        var h = new StringBuilder($"HTTP/1.1 {status}\r\nContent-Length: {length}\r\nAccept-Ranges: bytes\r\n");
        if (range is { } r)
            h.Append(CultureInfo.InvariantCulture, $"Content-Range: bytes {r.First}-{r.Last}/{_file.Length}\r\n");
        h.Append("\r\n");
        await stream.WriteAsync(Encoding.ASCII.GetBytes(h.ToString()), _stop.Token);
    }

    private async Task SendAsync(NetworkStream stream, string status, (long First, long Last)? range, byte[] data, long offset, int length)
    {
        await SendHeadAsync(stream, status, range, length);
        await stream.WriteAsync(data.AsMemory((int)offset, length), _stop.Token);
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
        _stop.Dispose();
    }
}
