using Block.Graph;
using Block.Jobs;
using Block.TestSupport;
using Kind = Block.Qcow2.Tests.Graph.JobCancelAndUnlinkTests.Kind;

namespace Block.Qcow2.Tests.Graph;

/// <summary>
/// Drained sections pause every job internally: the job parks with no I/O of its own for the whole section and runs on
/// after it, and the internal pause is kept apart from the user's (a job the user paused stays paused after the
/// section; a user resume inside one takes effect when it ends; the section never answers to block-job-resume).
/// </summary>
public sealed class JobDrainTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    private static async Task WaitAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + Bound;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "state not reached");
            await Task.Delay(2);
        }
    }

    /// <summary>The job's progress holds still for a while (no job I/O).</summary>
    private static async Task AssertStillAsync(BlockJob job)
    {
        long before = job.Offset;
        await Task.Delay(200);
        Assert.Equal(before, job.Offset);
        Assert.False(job.GetInfo().Busy);
    }

    /// <summary>Lets the job run to its end (a mirror completed once ready) and checks what it left.</summary>
    private static async Task FinishAsync(BlockGraph graph, BlockJob job, Kind kind)
    {
        job.SetSpeed(0);
        if (kind == Kind.Mirror)
        {
            await WaitAsync(() => job.GetInfo().Ready);
            job.Complete();
        }
        await job.Completion.WaitAsync(Bound);
        Assert.Empty(graph.QueryBlockJobs());
    }

    [Theory]
    [InlineData(Kind.Mirror)]
    [InlineData(Kind.Backup)]
    public async Task A_drained_section_parks_a_running_job_without_io_and_it_runs_on_after_it(Kind kind)
    {
        using var dir = new TempDirectory();
        var (graph, device) = await StreamJobTests.OpenChainAsync(dir);
        byte[] expected;
        await using (graph)
        {
            expected = await Qcow2Images.ReadAllAsync(device);
            var job = await JobCancelAndUnlinkTests.StartAsync(graph, dir, kind, speed: 2L << 20);
            await WaitAsync(() => job.Offset > 0);
            await using (await graph.BeginDrainAsync())
            {
                Assert.True(job.GetInfo().Paused);
                Assert.Equal(JobStatus.Paused, job.Status);
                await AssertStillAsync(job);
                // The section's pause is not the user's.
                Assert.Equal("Can't resume a job that was not paused", Assert.Throws<BlockException>(job.Resume).Message);
            }
            Assert.False(job.GetInfo().Paused);
            Assert.Equal(JobStatus.Running, job.Status);
            long after = job.Offset;
            await WaitAsync(() => job.Offset > after || job.Completion.IsCompleted);
            await FinishAsync(graph, job, kind);
            Assert.Equal(expected, await Qcow2Images.ReadAllAsync(device));
        }
        Qcow2Images.AssertClean(dir.File("top.qcow2"));
        Qcow2Images.AssertClean(dir.File("base.qcow2"));
        Qcow2Images.AssertClean(dir.File("target.qcow2"));
        Assert.Equal(expected, Qcow2Images.OracleRead(dir.File("target.qcow2"), dir));
    }

    [Theory]
    [InlineData(Kind.Mirror)]
    [InlineData(Kind.Backup)]
    public async Task A_user_pause_outlives_a_drained_section_and_a_user_resume_inside_one_takes_effect_when_it_ends(Kind kind)
    {
        using var dir = new TempDirectory();
        var (graph, device) = await StreamJobTests.OpenChainAsync(dir);
        byte[] expected;
        await using (graph)
        {
            expected = await Qcow2Images.ReadAllAsync(device);
            var job = await JobCancelAndUnlinkTests.StartAsync(graph, dir, kind, speed: 2L << 20);
            await WaitAsync(() => job.Offset > 0);

            // Paused by the user inside a section: still paused after it.
            await using (await graph.BeginDrainAsync())
                job.Pause();
            Assert.True(job.GetInfo().Paused);
            Assert.Equal(JobStatus.Paused, job.Status);
            await AssertStillAsync(job);
            Assert.Equal("Job is already paused", Assert.Throws<BlockException>(job.Pause).Message);

            // Resumed by the user inside two nested sections: it stays parked until the outer one ends.
            var outer = await graph.BeginDrainAsync();
            var inner = await graph.BeginDrainAsync();
            job.Resume();
            Assert.True(job.GetInfo().Paused);
            await inner.DisposeAsync();
            Assert.True(job.GetInfo().Paused);
            await AssertStillAsync(job);
            // The user's pause is gone: a second resume is refused while the sections still hold the job.
            Assert.Equal("Can't resume a job that was not paused", Assert.Throws<BlockException>(job.Resume).Message);
            await outer.DisposeAsync();
            Assert.False(job.GetInfo().Paused);
            Assert.Equal(JobStatus.Running, job.Status);

            await FinishAsync(graph, job, kind);
            Assert.Equal(expected, await Qcow2Images.ReadAllAsync(device));
        }
        Qcow2Images.AssertClean(dir.File("target.qcow2"));
        Assert.Equal(expected, Qcow2Images.OracleRead(dir.File("target.qcow2"), dir));
    }

    [Fact]
    public async Task A_drained_section_of_one_node_pauses_the_jobs_above_it_and_no_other()
    {
        using var dir = new TempDirectory();
        var (graph, device) = await StreamJobTests.OpenChainAsync(dir);
        await using (graph)
        {
            QemuImg.Create("qcow2", dir.File("other.qcow2"), "1M");
            var other = await graph.AddNodeAsync(graph.Parser.ParseJson(new System.Text.Json.Nodes.JsonObject
            {
                ["driver"] = "qcow2", ["node-name"] = "x",
                ["file"] = new System.Text.Json.Nodes.JsonObject { ["driver"] = "file", ["filename"] = dir.File("other.qcow2") },
            }.ToJsonString()));
            var job = await JobCancelAndUnlinkTests.StartAsync(graph, dir, Kind.Mirror, speed: 2L << 20);
            await WaitAsync(() => job.Offset > 0);

            // Another node's section leaves the job alone.
            await using (await graph.BeginDrainAsync(other))
            {
                Assert.False(job.GetInfo().Paused);
                long before = job.Offset;
                await WaitAsync(() => job.Offset > before || job.GetInfo().Ready);
            }

            // The top image's file is below the job's source: the job parks for that section.
            var file = device.Root!.PrimaryChild!.Node;
            await using (await graph.BeginDrainAsync(file))
            {
                Assert.True(job.GetInfo().Paused);
                await AssertStillAsync(job);
            }
            Assert.False(job.GetInfo().Paused);
            await FinishAsync(graph, job, Kind.Mirror);
        }
        Qcow2Images.AssertClean(dir.File("target.qcow2"));
    }
}
