namespace Block.Cli.Io;

/// <summary>
/// The requests <c>blk io</c> has in flight without waiting (<c>aio_read</c>, <c>aio_write</c>) and the lines they
/// print, with qemu-io's timing of those lines: a request's completion lines, and a blkdebug breakpoint's
/// <c>Suspended request</c> line reached after the request first waited, are printed only where qemu-io runs its
/// event loop (<c>aio_flush</c>, <c>wait_break</c>, <c>sleep</c>, while a synchronous command waits, at close); a
/// breakpoint reached before the request first waited prints at once, inside the command that started or resumed it.
/// </summary>
/// <remarks>
/// qemu-io runs on one thread, so where a line appears follows from where the loop runs; our requests complete on
/// pool threads, so their lines are queued and the command flow prints them at those points. Where qemu-io would wait
/// forever (<c>aio_flush</c> or a synchronous command while a request is held at a breakpoint that only a later command
/// could resume, <c>wait_break</c> with nothing in flight that could reach it, exit with a held request) we fail with
/// EDEADLK, or resume, instead: a test tool that hangs tells nobody anything.
/// </remarks>
internal sealed class AsyncRequests
{
    [ThreadStatic]
    private static bool t_inline;

    // The request (an aio request or a synchronous command's) whose flow is running: breakpoint callbacks run on
    // that flow, so they know which request a breakpoint held.
    private static readonly AsyncLocal<Request?> s_current = new();

    private readonly TextWriter _out;
    private readonly Lock _lock = new();
    private readonly List<string> _lines = [];
    // Newest first, as blkdebug resumes the request suspended last under a tag.
    private readonly List<(string Tag, Request? Request)> _suspended = [];
    private readonly HashSet<Request> _inFlight = [];
    private TaskCompletionSource _changed = NewSignal();

    public AsyncRequests(TextWriter output) => _out = output;

    /// <summary>One request (an aio command's or a synchronous command's) as the breakpoint bookkeeping sees it.</summary>
    public sealed class Request;

    /// <summary>Runs <paramref name="start"/> as the request <paramref name="request"/>, printing breakpoint lines it reaches at once.</summary>
    public static T Start<T>(Request request, Func<T> start)
    {
        var outer = s_current.Value;
        s_current.Value = request;
        t_inline = true;
        try
        {
            return start();
        }
        finally
        {
            t_inline = false;
            // The request's own flow keeps the value (its methods captured it when they first waited).
            s_current.Value = outer;
        }
    }

    /// <summary>Runs a command step (resume, remove_break) that may go on with held requests; their breakpoint lines print at once.</summary>
    public static void RunInline(Action action)
    {
        t_inline = true;
        try
        {
            action();
        }
        finally
        {
            t_inline = false;
        }
    }

    /// <summary>Starts counting <paramref name="request"/> as in flight.</summary>
    public void Begin(Request request)
    {
        lock (_lock)
            _inFlight.Add(request);
    }

    /// <summary>Ends <paramref name="request"/> and queues its completion lines.</summary>
    public void End(Request request, string lines)
    {
        lock (_lock)
        {
            _inFlight.Remove(request);
            if (lines.Length > 0)
                _lines.Add(lines);
        }
        Signal();
    }

    /// <summary>The breakpoint callback: a request was suspended under <paramref name="tag"/>.</summary>
    public void Suspended(string tag)
    {
        string line = $"blkdebug: Suspended request '{tag}'\n";
        lock (_lock)
        {
            _suspended.Insert(0, (tag, s_current.Value));
            if (!t_inline)
                _lines.Add(line);
        }
        if (t_inline)
            _out.Write(line);
        Signal();
    }

    /// <summary>Notes that the request suspended last under <paramref name="tag"/> (or all of them) goes on.</summary>
    public void Resumed(string tag, bool all)
    {
        lock (_lock)
        {
            for (int i = 0; i < _suspended.Count; i++)
            {
                if (_suspended[i].Tag != tag)
                    continue;
                _suspended.RemoveAt(i--);
                if (!all)
                    break;
            }
        }
    }

    /// <summary>The tags of held requests, the last suspended first.</summary>
    public IReadOnlyList<string> SuspendedTags()
    {
        lock (_lock)
            return _suspended.ConvertAll(s => s.Tag);
    }

    /// <summary>Prints the queued lines, in the order they came.</summary>
    /// <remarks>
    /// Requests that finish one after the other (one waited for the other) print in that order, as in qemu-io. Two
    /// independent requests that both finished before qemu-io's loop looked print newest first there (its thread pool
    /// lists requests that way) but in an order that races with the loop; we keep ours.
    /// </remarks>
    public void Print()
    {
        string[] lines;
        lock (_lock)
        {
            lines = [.. _lines];
            _lines.Clear();
        }
        foreach (string text in lines)
            _out.Write(text);
    }

    /// <summary>
    /// <c>aio_flush</c>: prints lines as requests finish until none is in flight; false (EDEADLK) if a request is
    /// held at a breakpoint, which nothing could resume while this waits.
    /// </summary>
    public async Task<bool> DrainAsync()
    {
        while (true)
        {
            var changed = Volatile.Read(ref _changed);
            Print();
            lock (_lock)
            {
                if (_inFlight.Count == 0)
                    return true;
                // A held request never finishes while this waits.
                if (_suspended.Count > 0)
                    return false;
            }
            await changed.Task.ConfigureAwait(false);
        }
    }

    /// <summary>
    /// <c>wait_break</c>: prints lines until <paramref name="isSuspended"/> (a request is held under <paramref name="tag"/>); false (EDEADLK) once no
    /// request in flight is running, so none could reach the breakpoint.
    /// </summary>
    public async Task<bool> WaitForSuspensionAsync(string tag, Func<bool> isSuspended)
    {
        string line = $"blkdebug: Suspended request '{tag}'\n";
        while (true)
        {
            var changed = Volatile.Read(ref _changed);
            if (isSuspended())
            {
                // Held while nobody looked: qemu-io's loop, here, is where it would have seen it.
                bool unseen;
                lock (_lock)
                    unseen = _lines.Contains(line);
                if (unseen)
                    Print();
                return true;
            }
            Print();
            lock (_lock)
            {
                if (!AnyRunning())
                    return isSuspended();
            }
            await changed.Task.ConfigureAwait(false);
        }
    }

    /// <summary><c>sleep</c>: prints lines as they come for <paramref name="time"/>.</summary>
    public async Task SleepAsync(TimeSpan time)
    {
        long deadline = Environment.TickCount64 + (long)time.TotalMilliseconds;
        while (true)
        {
            var changed = Volatile.Read(ref _changed);
            Print();
            long left = deadline - Environment.TickCount64;
            if (left <= 0)
                return;
            await Task.WhenAny(changed.Task, Task.Delay(TimeSpan.FromMilliseconds(left))).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// A synchronous command's request (begun with <see cref="Begin"/>): prints other requests' lines while it runs; false (EDEADLK) if a breakpoint
    /// holds it, since the command itself stands between it and any <c>resume</c>.
    /// </summary>
    public async Task<bool> WaitAsync(Request request, Task task)
    {
        while (true)
        {
            var changed = Volatile.Read(ref _changed);
            Print();
            if (task.IsCompleted)
            {
                End(request, string.Empty);
                await task.ConfigureAwait(false);
                return true;
            }
            lock (_lock)
            {
                if (_suspended.Exists(s => s.Request == request))
                {
                    // The held request goes on if a later command resumes it; its result is nobody's.
                    _ = task.ContinueWith(t =>
                    {
                        _ = t.Exception;
                        End(request, string.Empty);
                    }, TaskScheduler.Default);
                    return false;
                }
            }
            await Task.WhenAny(changed.Task, task).ConfigureAwait(false);
        }
    }

    private bool AnyRunning()
    {
        foreach (var r in _inFlight)
        {
            if (!_suspended.Exists(s => s.Request == r))
                return true;
        }
        return false;
    }

    private void Signal() => Interlocked.Exchange(ref _changed, NewSignal()).TrySetResult();

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
