using Block.Graph;
using Block.Jobs;

namespace Block.Tests.Jobs;

/// <summary>What a cancel does once a job's work is over.</summary>
public sealed class BlockJobCancelTests
{
    /// <summary>A job with no work whose switch-over waits for the test.</summary>
    private sealed class HeldPrepareJob(BlockGraph graph) : BlockJob(graph, "j", "backup")
    {
        public TaskCompletionSource Preparing { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public bool Aborted { get; private set; }

        protected override ValueTask RunAsync() => default;

        protected override async ValueTask PrepareAsync()
        {
            Preparing.TrySetResult();
            await Release.Task.ConfigureAwait(false);
        }

        protected override ValueTask AbortAsync()
        {
            Aborted = true;
            return default;
        }
    }

    [Fact]
    public async Task A_cancel_after_the_work_is_done_is_ignored_and_the_job_completes()
    {
        // A backup cancelled in this moment used to say IsCancelled while it completed and consumed its bitmap, so
        // its caller expected the bits back (a flake of the incremental backup cancel test).
        await using var graph = new BlockGraph();
        var events = new List<string>();
        graph.EventRaised += e => { lock (events) events.Add(e.Name); };
        var job = new HeldPrepareJob(graph);
        graph.StartJob(job);
        await job.Preparing.Task.WaitAsync(TimeSpan.FromSeconds(60));
        job.Cancel();
        job.Cancel(force: true);
        job.Release.SetResult();
        await job.Completion.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.False(job.IsCancelled);
        Assert.False(job.Aborted);
        Assert.Equal(["BLOCK_JOB_COMPLETED"], events);
    }
}
