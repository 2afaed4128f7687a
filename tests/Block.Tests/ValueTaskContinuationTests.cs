using Block.Io;

namespace Block.Tests;

/// <summary>
/// <see cref="ValueTaskContinuation{TState}"/>, the request path's replacement for small pooled <c>async</c> wrappers:
/// it must behave as the <c>await</c> it replaces (outcome, exception, execution context, the callback's own task)
/// while its objects are reused across threads.
/// </summary>
public sealed class ValueTaskContinuationTests
{
    private static readonly Func<List<string>, int, Exception?, ValueTask> s_record = static (log, result, error) =>
    {
        lock (log)
            log.Add(error is null ? $"ok {result}" : $"failed {error.Message}");
        return ValueTaskContinuation<List<string>>.Propagate(error);
    };

    [Fact]
    public async Task The_callback_sees_the_result_of_a_request_completed_on_another_thread_and_then_the_task_completes()
    {
        var log = new List<string>();
        var inner = new TaskCompletionSource<int>();
        var task = ValueTaskContinuation<List<string>>.Then(new ValueTask<int>(inner.Task), log, s_record);
        Assert.False(task.IsCompleted);
        await Task.Run(() => inner.SetResult(42));
        await task;
        Assert.Equal(["ok 42"], log);
    }

    [Fact]
    public async Task A_failure_reaches_the_callback_and_then_the_awaiter_with_its_original_stack()
    {
        var log = new List<string>();
        var task = ValueTaskContinuation<List<string>>.Then(FailLaterAsync(), log, s_record);
        var e = await Assert.ThrowsAsync<BlockException>(async () => await task);
        Assert.Equal(Errno.EIO, e.Errno);
        Assert.Contains(nameof(FailLaterAsync), e.StackTrace);
        Assert.Equal(["failed Input/output error"], log);

        static async ValueTask FailLaterAsync()
        {
            await Task.Yield();
            throw new BlockException(Errno.EIO, "Input/output error");
        }
    }

    [Fact]
    public async Task A_callback_that_goes_asynchronous_decides_the_outcome_when_its_own_task_completes()
    {
        var gate = new TaskCompletionSource();
        var task = ValueTaskContinuation<Task>.Then(new ValueTask(Task.Delay(1)), gate.Task,
            static (g, _, _) => new ValueTask(g));
        await Task.Delay(50);
        Assert.False(task.IsCompleted);
        gate.SetException(new BlockException(Errno.ENOSPC, "No space left on device"));
        var e = await Assert.ThrowsAsync<BlockException>(async () => await task);
        Assert.Equal(Errno.ENOSPC, e.Errno);
    }

    [Fact]
    public void A_request_already_complete_runs_the_callback_at_once_as_an_await_of_it_would()
    {
        // The throttled and drained paths issue a request and hand it over whether or not it is done; one done at
        // once must stay done at once, or a caller counting the requests that wait would count it too.
        var log = new List<string>();
        var task = ValueTaskContinuation<List<string>>.Then(new ValueTask<int>(7), log, s_record);
        Assert.True(task.IsCompletedSuccessfully);
        Assert.Equal(["ok 7"], log);
    }

    [Fact]
    public async Task A_callback_that_throws_fails_the_task_with_its_exception()
    {
        var task = ValueTaskContinuation<int>.Then(default(ValueTask), 0, static (_, _, _) => throw new InvalidOperationException("callback"));
        var e = await Assert.ThrowsAsync<InvalidOperationException>(async () => await task);
        Assert.Equal("callback", e.Message);
    }

    private static readonly AsyncLocal<string?> s_local = new();

    [Fact]
    public async Task The_callback_runs_in_the_execution_context_of_the_code_that_issued_the_request()
    {
        s_local.Value = "issuer";
        var seen = new string?[1];
        var inner = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var task = ValueTaskContinuation<string?[]>.Then(new ValueTask(inner.Task), seen, static (box, _, error) =>
        {
            box[0] = s_local.Value;
            return ValueTaskContinuation<string?[]>.Propagate(error);
        });
        // Completed from a thread whose own context knows nothing of the issuer's.
        var thread = new Thread(() => inner.SetResult());
        thread.UnsafeStart();
        await task;
        thread.Join();
        Assert.Equal("issuer", seen[0]);
    }

    [Fact]
    public async Task Objects_reused_by_many_threads_keep_every_request_apart()
    {
        // Each round issues on one thread and completes on another, as an I/O worker does; a reused object that
        // leaked state from one request into the next would count a request twice or lose one.
        var counts = new int[4096];
        await Parallel.ForAsync(0, counts.Length, async (i, cancellationToken) =>
        {
            var inner = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
            var task = ValueTaskContinuation<int[]>.Then(new ValueTask<int>(inner.Task), counts, static (c, index, error) =>
            {
                Interlocked.Increment(ref c[index]);
                return ValueTaskContinuation<int[]>.Propagate(error);
            });
            _ = Task.Run(() => inner.SetResult(i));
            await task;
        });
        Assert.All(counts, c => Assert.Equal(1, c));
    }
}
