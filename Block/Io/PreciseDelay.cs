using System.Diagnostics;
using System.Threading.Tasks.Sources;

namespace Block.Io;

/// <summary>
/// Delays with sub-millisecond resolution, for device latency simulation (<c>null-co</c>'s <c>latency-ns</c>).
/// </summary>
/// <remarks>
/// .NET timers tick in milliseconds; a simulated 10 µs device needs better. Delays of 2 ms and more use
/// <see cref="Task.Delay(TimeSpan)"/>; shorter ones are served by one background thread that sleeps until the
/// earliest deadline is near and then spins, completing pooled value-task sources in deadline order.
/// </remarks>
internal static class PreciseDelay
{
    private static readonly PriorityQueue<Waiter, long> s_queue = new();
    private static readonly object s_lock = new();
    private static readonly AutoResetEvent s_wake = new(false);
    private static readonly Stack<Waiter> s_pool = new();
    private static Thread? s_thread;

    public static ValueTask WaitAsync(long nanoseconds)
    {
        if (nanoseconds <= 0)
            return default;
        if (nanoseconds >= 2_000_000)
            return new ValueTask(Task.Delay(TimeSpan.FromTicks(nanoseconds / 100)));
        long deadline = Stopwatch.GetTimestamp() + (long)(nanoseconds * (Stopwatch.Frequency / 1e9));
        Waiter waiter;
        lock (s_lock)
        {
            waiter = s_pool.Count > 0 ? s_pool.Pop() : new Waiter();
            s_queue.Enqueue(waiter, deadline);
            if (s_thread is null)
            {
                s_thread = new Thread(Run) { IsBackground = true, Name = "block-delay" };
                s_thread.Start();
            }
        }
        s_wake.Set();
        return new ValueTask(waiter, waiter.Version);
    }

    private static void Run()
    {
        while (true)
        {
            Waiter? due = null;
            long wait;
            lock (s_lock)
            {
                if (s_queue.TryPeek(out var first, out long deadline))
                {
                    long now = Stopwatch.GetTimestamp();
                    if (now >= deadline)
                    {
                        due = s_queue.Dequeue();
                        wait = 0;
                    }
                    else
                    {
                        wait = deadline - now;
                    }
                    _ = first;
                }
                else
                {
                    wait = -1;
                }
            }
            if (due != null)
            {
                due.Complete();
                continue;
            }
            if (wait < 0)
            {
                s_wake.WaitOne();
            }
            else if (wait > Stopwatch.Frequency / 500)
            {
                s_wake.WaitOne(TimeSpan.FromTicks(wait * TimeSpan.TicksPerSecond / Stopwatch.Frequency) - TimeSpan.FromMilliseconds(1));
            }
            else
            {
                Thread.SpinWait(50);
            }
        }
    }

    private static void Return(Waiter waiter)
    {
        lock (s_lock)
        {
            if (s_pool.Count < 1024)
                s_pool.Push(waiter);
        }
    }

    private sealed class Waiter : IValueTaskSource
    {
        private ManualResetValueTaskSourceCore<bool> _core;

        public Waiter()
        {
            _core.RunContinuationsAsynchronously = true;
        }

        public short Version => _core.Version;

        public void Complete() => _core.SetResult(true);

        public void GetResult(short token)
        {
            try
            {
                _core.GetResult(token);
            }
            finally
            {
                _core.Reset();
                Return(this);
            }
        }

        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);
    }
}
