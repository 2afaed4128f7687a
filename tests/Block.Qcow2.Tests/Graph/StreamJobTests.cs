using Block.Graph;
using Block.Jobs;
using Block.TestSupport;

namespace Block.Qcow2.Tests.Graph;

/// <summary>block-stream through the library: guest writes racing the copy, drained sections, the job's id.</summary>
public sealed class StreamJobTests
{
    /// <summary>base.qcow2 (16 MiB, data in every other MiB) ← top.qcow2 (data in a few places), opened as nodes with a device "dev" on top.</summary>
    internal static async Task<(BlockGraph Graph, BlockBackend Device)> OpenChainAsync(TempDirectory dir)
    {
        QemuImg.Create("qcow2", dir.File("base.qcow2"), "16M");
        var writes = Enumerable.Range(0, 8).Select(i => $"write -P 0x{0x40 + i:x2} {i * 2}M 1M").ToArray();
        QemuIo.RunChecked(dir.File("base.qcow2"), "qcow2", writes);
        QemuImg.Run("create", "-q", "-f", "qcow2", "-b", dir.File("base.qcow2"), "-F", "qcow2", dir.File("top.qcow2")).EnsureSuccess("qemu-img create");
        QemuIo.RunChecked(dir.File("top.qcow2"), "qcow2", "write -P 0x77 1536k 1M", "write -P 0x78 9M 64k");
        var graph = Qcow2Images.NewGraph();
        await graph.AddNodeAsync(graph.Parser.ParseJson(Qcow2Node("b", dir.File("base.qcow2"), null, readOnly: true)));
        var top = await graph.AddNodeAsync(graph.Parser.ParseJson(Qcow2Node("t", dir.File("top.qcow2"), "b", readOnly: false)));
        var device = graph.CreateBackend(top, new BlockBackendOptions { Name = "dev" });
        return (graph, device);
    }

    private static string Qcow2Node(string name, string path, string? backing, bool readOnly)
    {
        var o = new System.Text.Json.Nodes.JsonObject
        {
            ["driver"] = "qcow2", ["node-name"] = name, ["read-only"] = readOnly,
            ["file"] = new System.Text.Json.Nodes.JsonObject { ["driver"] = "file", ["filename"] = path },
        };
        if (backing != null)
            o["backing"] = backing;
        return o.ToJsonString();
    }

    [Fact]
    public async Task Guest_writes_during_a_stream_survive_and_the_image_equals_the_flattened_chain_with_them()
    {
        using var dir = new TempDirectory();
        var (graph, device) = await OpenChainAsync(dir);
        byte[] expectedAfter;
        await using (graph)
        {
            var expected = await Qcow2Images.ReadAllAsync(device);
            expectedAfter = expected;
            var job = await graph.StreamAsync(null, "dev");
            Assert.Equal("dev", job.Id);

            // Writes at random places (and always some in ranges the stream is about to copy) until the job is done.
            var random = new Random(14);
            int count = 0;
            while (!job.Completion.IsCompleted || count < 64)
            {
                long offset = random.Next(0, (16 << 20) / 512 - 256) * 512L;
                int length = random.Next(1, 256) * 512;
                var data = new byte[length];
                random.NextBytes(data);
                await device.WriteAsync(offset, data);
                data.CopyTo(expected.AsSpan((int)offset));
                count++;
            }
            await job.Completion;

            Assert.Null(device.Root!.Backing);
            Assert.Equal(expected, await Qcow2Images.ReadAllAsync(device));
        }
        Qcow2Images.AssertClean(dir.File("top.qcow2"));
        Assert.Null((string?)QemuImg.Info(dir.File("top.qcow2"), "qcow2")["backing-filename"]);
        Assert.Equal(expectedAfter, Qcow2Images.OracleRead(dir.File("top.qcow2"), dir));
    }

    [Fact]
    public async Task A_drained_section_parks_a_job_and_ends_with_it_running_again()
    {
        using var dir = new TempDirectory();
        var (graph, _) = await OpenChainAsync(dir);
        await using (graph)
        {
            var job = await graph.StreamAsync("s", "dev", speed: 1);
            while (job.GetInfo() is { Offset: 0 } or { Busy: true })
                await Task.Delay(5);
            await using (await graph.BeginDrainAsync())
            {
                var info = job.GetInfo();
                Assert.True(info.Paused);
                Assert.False(info.Busy);
                Assert.Equal(JobStatus.Paused, job.Status);
                // An internal pause is not the user's: resume refuses it.
                var e = Assert.Throws<BlockException>(job.Resume);
                Assert.Equal("Can't resume a job that was not paused", e.Message);
            }
            Assert.False(job.GetInfo().Paused);
            Assert.Equal(JobStatus.Running, job.Status);

            // A user pause outlives a drained section.
            job.Pause();
            await using (await graph.BeginDrainAsync())
                Assert.True(job.GetInfo().Paused);
            Assert.True(job.GetInfo().Paused);
            job.Resume();
            job.SetSpeed(0);
            await job.Completion;
            Assert.Empty(graph.QueryBlockJobs());
        }
    }

    [Fact]
    public async Task Closing_the_graph_cancels_a_running_job_and_leaves_the_chain_whole()
    {
        using var dir = new TempDirectory();
        var (graph, device) = await OpenChainAsync(dir);
        var expected = await Qcow2Images.ReadAllAsync(device);
        var events = new List<string>();
        graph.EventRaised += e => events.Add(e.Name);
        var job = await graph.StreamAsync("s", "t", speed: 1);
        await graph.DisposeAsync();
        Assert.True(job.Completion.IsCompleted);
        Assert.Equal(["BLOCK_JOB_CANCELLED"], events);
        Qcow2Images.AssertClean(dir.File("top.qcow2"));
        Assert.Equal(dir.File("base.qcow2"), (string?)QemuImg.Info(dir.File("top.qcow2"), "qcow2")["backing-filename"]);
        Assert.Equal(expected, Qcow2Images.OracleRead(dir.File("top.qcow2"), dir));
    }
}
