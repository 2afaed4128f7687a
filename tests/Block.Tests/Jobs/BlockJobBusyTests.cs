using Block.Graph;
using Block.Jobs;

namespace Block.Tests.Jobs;

/// <summary>What <c>query-block-jobs</c>' <c>busy</c> shows between a job's chunks.</summary>
public sealed class BlockJobBusyTests
{
    /// <summary>Keeps the first continuation posted to it until the test runs it; later ones go to the thread pool.</summary>
    private sealed class HeldPost : SynchronizationContext
    {
        public TaskCompletionSource<(SendOrPostCallback Callback, object? State)> Posted { get; } =
            new(TaskCreationOptions.RunContinuationsAsynchronously);

        public override void Post(SendOrPostCallback d, object? state)
        {
            if (!Posted.TrySetResult((d, state)))
                ThreadPool.QueueUserWorkItem(_ => d(state));
        }
    }

    /// <summary>A job whose only work is one pause point with no wait, as a job between two unthrottled chunks passes.</summary>
    private sealed class PausePointJob(BlockGraph graph, HeldPost context) : BlockJob(graph, "j", "stream")
    {
        protected override async ValueTask RunAsync()
        {
            SynchronizationContext.SetSynchronizationContext(context);
            await SleepAsync(0).ConfigureAwait(false);
        }
    }

    [Fact]
    public async Task A_job_between_two_unthrottled_chunks_stays_busy()
    {
        // A poll that caught a commit job in this moment saw "busy": false and took it for the rate-limit sleep, and
        // the next query-block-jobs found the job copying again (a flake of the commit oracle test under load).
        await using var graph = new BlockGraph();
        var context = new HeldPost();
        var job = new PausePointJob(graph, context);
        graph.StartJob(job);
        var (callback, state) = await context.Posted.Task.WaitAsync(TimeSpan.FromMinutes(1));
        bool busy = job.GetInfo().Busy;
        ThreadPool.QueueUserWorkItem(_ => callback(state));
        await job.Completion.WaitAsync(TimeSpan.FromMinutes(1));
        Assert.True(busy);
    }
}
