using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Threading.Tasks.Sources;

namespace Block.Io;

/// <summary>
/// A value task that completes when an issued request has completed and a callback has run on its outcome: what a
/// small <c>async</c> wrapper with one <c>await</c> does (count a request out, account it, grow a file), without a
/// state machine box.
/// </summary>
/// <remarks>
/// <para><c>PoolingAsyncValueTaskMethodBuilder</c> keeps its boxes per thread and per core. A request is issued on one
/// thread (a guest's, an NBD connection's) and completes on an I/O worker, so each wrapper's box is rented from the
/// first thread's cache and goes back to the second's, and the first finds its cache empty the next time: a served
/// 4 KiB NBD write allocated 344 B in five such boxes (bench/README.md). These objects go back to one process-wide
/// pool, whichever thread completes them.</para>
/// <para>The callback runs in the execution context of the code that issued the request, as an <c>await</c>'s
/// continuation does, and on the thread that completed it (it must not block).</para>
/// </remarks>
/// <typeparam name="TState">What the callback needs, passed without a closure.</typeparam>
internal sealed class ValueTaskContinuation<TState> : IValueTaskSource
{
    private const int MaxPooled = 1024;
    private static readonly ConcurrentQueue<ValueTaskContinuation<TState>> s_pool = new();
    private static readonly ContextCallback s_runInContext = static s => ((ValueTaskContinuation<TState>)s!).Continue();
    private static int s_pooled;

    private readonly Action _onCompleted;
    private ManualResetValueTaskSourceCore<bool> _core;
    private ConfiguredValueTaskAwaitable.ConfiguredValueTaskAwaiter _awaiter;
    private ConfiguredValueTaskAwaitable<int>.ConfiguredValueTaskAwaiter _intAwaiter;
    private bool _awaitsInt;
    private bool _awaitsNext;
    private ExecutionContext? _context;
    private TState _state = default!;
    private Func<TState, int, Exception?, ValueTask>? _then;

    private ValueTaskContinuation() => _onCompleted = OnCompleted;

    /// <summary>
    /// Completes when <paramref name="task"/> has and <paramref name="then"/>, given its exception (null on
    /// success), has run and its own task has completed; the outcome is that task's. A callback that only cleans up
    /// returns <see cref="Propagate"/> of the exception it was given.
    /// </summary>
    public static ValueTask Then(ValueTask task, TState state, Func<TState, int, Exception?, ValueTask> then)
    {
        if (task.IsCompleted)
        {
            Exception? error = null;
            try
            {
                task.GetAwaiter().GetResult();
            }
            catch (Exception e)
            {
                error = e;
            }
            return RunNow(state, 0, error, then);
        }
        var continuation = Rent(state, then);
        continuation._awaiter = task.ConfigureAwait(false).GetAwaiter();
        return continuation.Start(intResult: false);
    }

    /// <summary>As the other overload, with the request's result (bytes read) given to <paramref name="then"/>.</summary>
    public static ValueTask Then(ValueTask<int> task, TState state, Func<TState, int, Exception?, ValueTask> then)
    {
        if (task.IsCompleted)
        {
            int result = 0;
            Exception? error = null;
            try
            {
                result = task.GetAwaiter().GetResult();
            }
            catch (Exception e)
            {
                error = e;
            }
            return RunNow(state, result, error, then);
        }
        var continuation = Rent(state, then);
        continuation._intAwaiter = task.ConfigureAwait(false).GetAwaiter();
        return continuation.Start(intResult: true);
    }

    /// <summary>A completed task for success, else a faulted one rethrowing <paramref name="error"/> where it was thrown.</summary>
    public static ValueTask Propagate(Exception? error) => error is null ? default : ValueTask.FromException(error);

    /// <summary>A task already complete goes on at once, on this thread, as an <c>await</c> of it would.</summary>
    private static ValueTask RunNow(TState state, int result, Exception? error, Func<TState, int, Exception?, ValueTask> then)
    {
        ArgumentNullException.ThrowIfNull(then);
        try
        {
            return then(state, result, error);
        }
        catch (Exception e)
        {
            return ValueTask.FromException(e);
        }
    }

    private static ValueTaskContinuation<TState> Rent(TState state, Func<TState, int, Exception?, ValueTask> then)
    {
        ArgumentNullException.ThrowIfNull(then);
        if (s_pool.TryDequeue(out var continuation))
            Interlocked.Decrement(ref s_pooled);
        else
            continuation = new ValueTaskContinuation<TState>();
        continuation._state = state;
        continuation._then = then;
        continuation._context = ExecutionContext.Capture();
        return continuation;
    }

    private ValueTask Start(bool intResult)
    {
        _awaitsInt = intResult;
        _awaitsNext = false;
        var task = new ValueTask(this, _core.Version);
        if (intResult)
            _intAwaiter.UnsafeOnCompleted(_onCompleted);
        else
            _awaiter.UnsafeOnCompleted(_onCompleted);
        return task;
    }

    private void OnCompleted()
    {
        if (_context is { } context)
            ExecutionContext.Run(context, s_runInContext, this);
        else
            Continue();
    }

    private void Continue()
    {
        int result = 0;
        Exception? error = null;
        try
        {
            if (_awaitsInt)
            {
                var awaiter = _intAwaiter;
                _intAwaiter = default;
                result = awaiter.GetResult();
            }
            else
            {
                var awaiter = _awaiter;
                _awaiter = default;
                awaiter.GetResult();
            }
        }
        catch (Exception e)
        {
            error = e;
        }
        if (_awaitsNext)
        {
            Finish(error);
            return;
        }

        ValueTask next;
        try
        {
            next = _then!(_state, result, error);
        }
        catch (Exception e)
        {
            Finish(e);
            return;
        }
        if (next.IsCompleted)
        {
            try
            {
                next.GetAwaiter().GetResult();
            }
            catch (Exception e)
            {
                Finish(e);
                return;
            }
            Finish(null);
            return;
        }
        // The callback went asynchronous (an error policy waiting for cont, say): its task is this one's outcome.
        _awaitsNext = true;
        _awaitsInt = false;
        _awaiter = next.ConfigureAwait(false).GetAwaiter();
        _awaiter.UnsafeOnCompleted(_onCompleted);
    }

    private void Finish(Exception? error)
    {
        _state = default!;
        _then = null;
        _context = null;
        // The awaiter's continuation may run inline here and reuse this object: nothing may touch it after this.
        if (error is null)
            _core.SetResult(true);
        else
            _core.SetException(error);
    }

    /// <inheritdoc />
    public void GetResult(short token)
    {
        bool current = token == _core.Version;
        try
        {
            _core.GetResult(token);
        }
        finally
        {
            if (current)
            {
                _core.Reset();
                if (Interlocked.Increment(ref s_pooled) <= MaxPooled)
                    s_pool.Enqueue(this);
                else
                    Interlocked.Decrement(ref s_pooled);
            }
        }
    }

    /// <inheritdoc />
    public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

    /// <inheritdoc />
    public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
