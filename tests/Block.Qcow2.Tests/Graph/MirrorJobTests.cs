using Block.Graph;
using Block.Qapi;
using Block.TestSupport;

namespace Block.Qcow2.Tests.Graph;

/// <summary>
/// Mirror and active commit through the library while a guest writes to the device for the whole job: what the target
/// (or base) holds at the end, the switch-over, and cancels at random points.
/// </summary>
public sealed class MirrorJobTests
{
    /// <summary>Writes random data at random places through <paramref name="device"/> until <paramref name="until"/>, at least <paramref name="minimum"/> times, keeping <paramref name="expected"/> in step.</summary>
    private static async Task WriteUntilAsync(BlockBackend device, byte[] expected, Random random, Func<bool> until, int minimum)
    {
        for (int count = 0; !until() || count < minimum; count++)
        {
            long offset = random.Next(0, (int)(device.Length / 512) - 256) * 512L;
            var data = new byte[random.Next(1, 256) * 512];
            random.NextBytes(data);
            await device.WriteAsync(offset, data);
            data.CopyTo(expected.AsSpan((int)offset));
            // Past the minimum the writer leaves the job room to converge, as a guest with pauses between writes does.
            if (count >= minimum)
                await Task.Delay(1);
        }
    }

    [Theory]
    [InlineData(MirrorSyncMode.Full)]
    [InlineData(MirrorSyncMode.Top)]
    [InlineData(MirrorSyncMode.None)]
    public async Task A_mirror_with_guest_writes_throughout_completes_onto_a_target_equal_to_the_source(MirrorSyncMode sync)
    {
        using var dir = new TempDirectory();
        var (graph, device) = await StreamJobTests.OpenChainAsync(dir);
        byte[] expected;
        await using (graph)
        {
            expected = await Qcow2Images.ReadAllAsync(device);
            var events = new List<string>();
            graph.EventRaised += e => { lock (events) events.Add(e.Name); };
            var job = await graph.DriveMirrorAsync(null, "dev", dir.File("target.qcow2"), sync, nodeName: "tgt", granularity: 4096);
            Assert.Equal("dev", job.Id);
            var random = new Random(41 + (int)sync);
            await WriteUntilAsync(device, expected, random, () => job.GetInfo().Ready, 64);
            job.Complete();
            // Writes go on while the job converges and switches over.
            await WriteUntilAsync(device, expected, random, () => job.Completion.IsCompleted, 16);
            await job.Completion;
            Assert.Equal(["BLOCK_JOB_READY", "BLOCK_JOB_COMPLETED"], events);
            Assert.Equal("tgt", device.Root!.NodeName);
            Assert.Equal(expected, await Qcow2Images.ReadAllAsync(device));
            Assert.Empty(graph.QueryBlockJobs());
            Assert.Empty(graph.FindNode("t")?.DirtyBitmaps ?? []);
        }
        Qcow2Images.AssertClean(dir.File("target.qcow2"));
        Qcow2Images.AssertClean(dir.File("top.qcow2"));
        Assert.Equal(expected, Qcow2Images.OracleRead(dir.File("target.qcow2"), dir));
    }

    [Fact]
    public async Task An_active_commit_with_guest_writes_throughout_pivots_the_device_onto_a_base_holding_everything()
    {
        using var dir = new TempDirectory();
        var (graph, device) = await StreamJobTests.OpenChainAsync(dir);
        byte[] expected;
        await using (graph)
        {
            expected = await Qcow2Images.ReadAllAsync(device);
            var job = await graph.CommitAsync(null, "dev");
            Assert.Equal("commit", job.Type);
            var random = new Random(7);
            await WriteUntilAsync(device, expected, random, () => job.GetInfo().Ready, 64);
            job.Complete();
            await WriteUntilAsync(device, expected, random, () => job.Completion.IsCompleted, 16);
            await job.Completion;
            Assert.Equal("b", device.Root!.NodeName);
            Assert.False(device.Root.ReadOnly);
            Assert.Equal(expected, await Qcow2Images.ReadAllAsync(device));
        }
        Qcow2Images.AssertClean(dir.File("base.qcow2"));
        Assert.Equal(expected, Qcow2Images.OracleRead(dir.File("base.qcow2"), dir));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    [InlineData(5)]
    [InlineData(6)]
    public async Task A_mirror_or_active_commit_cancelled_at_a_random_point_leaves_every_image_consistent(int seed)
    {
        using var dir = new TempDirectory();
        var (graph, device) = await StreamJobTests.OpenChainAsync(dir);
        var random = new Random(seed);
        bool commit = seed % 2 == 0;
        bool force = seed % 3 == 0;
        byte[] expected;
        string? ended = null;
        await using (graph)
        {
            expected = await Qcow2Images.ReadAllAsync(device);
            graph.EventRaised += e => { if (e.Name is "BLOCK_JOB_COMPLETED" or "BLOCK_JOB_CANCELLED") ended = e.Name; };
            var job = commit
                ? await graph.CommitAsync("j", "dev")
                : await graph.DriveMirrorAsync("j", "dev", dir.File("target.qcow2"), MirrorSyncMode.Full, granularity: 65536, bufSize: 1 << 20);
            int writes = random.Next(0, 200);
            await WriteUntilAsync(device, expected, random, () => true, writes);
            bool wasReady = job.GetInfo().Ready;
            job.Cancel(force);
            await job.Completion;
            Assert.Empty(graph.QueryBlockJobs());
            Assert.Equal("t", device.Root!.NodeName);
            // The graph stays usable: more writes, then a second job on the same device.
            await WriteUntilAsync(device, expected, random, () => true, 8);
            Assert.Equal(expected, await Qcow2Images.ReadAllAsync(device));
            if (wasReady && !force)
                Assert.Equal("BLOCK_JOB_COMPLETED", ended);
            var again = await graph.StreamAsync("s", "dev");
            await again.Completion;
            Assert.Equal(expected, await Qcow2Images.ReadAllAsync(device));
        }
        Qcow2Images.AssertClean(dir.File("top.qcow2"));
        Qcow2Images.AssertClean(dir.File("base.qcow2"));
        Assert.Equal(expected, Qcow2Images.OracleRead(dir.File("top.qcow2"), dir));
        if (!commit)
            Qcow2Images.AssertClean(dir.File("target.qcow2"));
    }
}
