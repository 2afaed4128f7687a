using System.Text.Json.Nodes;

namespace Block.Qmp;

/// <summary>
/// QEMU's monitor rate limit for events a guest can trigger at will (<c>QUORUM_REPORT_BAD</c> per child node,
/// <c>QUORUM_FAILURE</c>): the first event of a kind goes out at once; for the next second, each newer one replaces
/// the one waiting; when the second is over the waiting one goes out (with its own timestamp) and a new second
/// starts, until a second passes with nothing to send.
/// </summary>
/// <remarks>
/// A quorum with a bad child reports every read of it; without the limit a guest reading a corrupted disk floods every
/// client. The library raises every event (<see cref="Graph.BlockGraph.EventRaised"/>); only the monitor limits them,
/// as in QEMU.
/// </remarks>
internal sealed class QmpEventThrottle : IDisposable
{
    private static readonly TimeSpan Period = TimeSpan.FromSeconds(1);

    private readonly TimeProvider _time;
    private readonly Action<JsonObject> _deliver;
    private readonly Dictionary<(string Name, string? Key), Window> _windows = [];
    private bool _disposed;

    public QmpEventThrottle(TimeProvider time, Action<JsonObject> deliver)
    {
        _time = time;
        _deliver = deliver;
    }

    /// <summary>
    /// True if events named <paramref name="name"/> are limited, with the member of <paramref name="data"/> that tells
    /// their sources apart in <paramref name="key"/> (null: one limit for all).
    /// </summary>
    public static bool IsLimited(string name, JsonObject? data, out string? key)
    {
        key = null;
        switch (name)
        {
            case "QUORUM_REPORT_BAD":
                key = (string?)data?["node-name"];
                return true;
            case "QUORUM_FAILURE":
                return true;
            default:
                return false;
        }
    }

    /// <summary>Sends <paramref name="message"/> now, or keeps it (in place of an older one) for the end of its window.</summary>
    public void Offer(string name, string? key, JsonObject message)
    {
        lock (_windows)
        {
            if (_disposed)
                return;
            if (_windows.TryGetValue((name, key), out var window))
            {
                window.Pending = message;
                return;
            }
            window = new Window();
            _windows.Add((name, key), window);
            window.Timer = _time.CreateTimer(_ => Elapse(name, key), null, Period, Timeout.InfiniteTimeSpan);
            _deliver(message);
        }
    }

    private void Elapse(string name, string? key)
    {
        lock (_windows)
        {
            if (_disposed || !_windows.TryGetValue((name, key), out var window))
                return;
            if (window.Pending is { } pending)
            {
                window.Pending = null;
                window.Timer!.Change(Period, Timeout.InfiniteTimeSpan);
                _deliver(pending);
                return;
            }
            window.Timer!.Dispose();
            _windows.Remove((name, key));
        }
    }

    public void Dispose()
    {
        lock (_windows)
        {
            _disposed = true;
            foreach (var w in _windows.Values)
                w.Timer?.Dispose();
            _windows.Clear();
        }
    }

    private sealed class Window
    {
        public ITimer? Timer;
        public JsonObject? Pending;
    }
}
