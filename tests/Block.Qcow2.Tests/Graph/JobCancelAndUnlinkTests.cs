using Block.Graph;
using Block.Jobs;
using Block.Qapi;
using Block.TestSupport;
using FsCheck;
using FsCheck.Fluent;

namespace Block.Qcow2.Tests.Graph;

/// <summary>
/// Jobs cut short: a cancel at any point of any job type, and a source image file unlinked while the job runs. Nothing
/// may be corrupt, and the graph must stay usable.
/// </summary>
public sealed class JobCancelAndUnlinkTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    /// <summary>The job types a cancel is tried on.</summary>
    public enum Kind
    {
        Mirror,
        ActiveCommit,
        Stream,
        Backup,
    }

    internal static async Task<BlockJob> StartAsync(BlockGraph graph, TempDirectory dir, Kind kind, long speed) => kind switch
    {
        Kind.Mirror => await graph.DriveMirrorAsync("j", "dev", dir.File("target.qcow2"), MirrorSyncMode.Full, speed: speed,
            granularity: 65536, bufSize: 1 << 20),
        Kind.ActiveCommit => await graph.CommitAsync("j", "dev", speed: speed),
        Kind.Stream => await graph.StreamAsync("j", "dev", speed: speed),
        _ => await graph.DriveBackupAsync("j", "dev", dir.File("target.qcow2"), MirrorSyncMode.Full, speed: speed),
    };

    /// <summary>Waits (bounded) until the job has made <paramref name="fraction"/> of its progress, or finished.</summary>
    private static async Task WaitProgressAsync(BlockJob job, double fraction)
    {
        var deadline = DateTime.UtcNow + Bound;
        while (!job.Completion.IsCompleted && DateTime.UtcNow < deadline)
        {
            var info = job.GetInfo();
            if (info.Len > 0 && info.Offset >= fraction * info.Len)
                return;
            await Task.Delay(1);
        }
    }

    private static async Task CancelAtAsync(Kind kind, int percent, bool force, bool limited)
    {
        using var dir = new TempDirectory();
        var (graph, device) = await StreamJobTests.OpenChainAsync(dir);
        byte[] expected;
        await using (graph)
        {
            expected = await Qcow2Images.ReadAllAsync(device);
            // A speed limit spreads the job over many pause points; without one it races the cancel.
            var job = await StartAsync(graph, dir, kind, limited ? 4L << 20 : 0);
            await WaitProgressAsync(job, percent / 100.0);
            try
            {
                job.Cancel(force);
            }
            catch (BlockException)
            {
                // It finished first: the end state must hold all the same.
            }
            await job.Completion.WaitAsync(Bound);
            Assert.Empty(graph.QueryBlockJobs());
            Assert.Equal(expected, await Qcow2Images.ReadAllAsync(device));

            // The graph stays usable: a write reads back, and a second job runs to its end on the same device.
            await device.WriteAsync(3 << 20, Patterns.Fill(65536, 0x5e));
            Patterns.Fill(65536, 0x5e).CopyTo(expected, 3 << 20);
            var again = await graph.StreamAsync("again", "dev");
            await again.Completion.WaitAsync(Bound);
            Assert.Equal(expected, await Qcow2Images.ReadAllAsync(device));
        }
        Qcow2Images.AssertClean(dir.File("top.qcow2"));
        Qcow2Images.AssertClean(dir.File("base.qcow2"));
        if (File.Exists(dir.File("target.qcow2")))
            Qcow2Images.AssertClean(dir.File("target.qcow2"));
        Assert.Equal(expected, Qcow2Images.OracleRead(dir.File("top.qcow2"), dir));
    }

    [Fact]
    public void Any_cancel_point_of_any_job_leaves_the_disk_intact_every_image_clean_and_the_graph_usable()
    {
        var cases = from kind in Gen.Elements(Kind.Mirror, Kind.ActiveCommit, Kind.Stream, Kind.Backup)
                    from percent in Gen.Choose(0, 100)
                    from force in Gen.Elements(false, true)
                    from limited in Gen.Elements(false, true)
                    select (kind, percent, force, limited);
        var property = Prop.ForAll(cases.ToArbitrary(), c =>
            CancelAtAsync(c.kind, c.percent, c.force, c.limited).GetAwaiter().GetResult());
        Check.One(Config.QuickThrowOnFailure.WithMaxTest(12), property);
    }

    [Theory]
    [InlineData(Kind.Mirror)]
    [InlineData(Kind.Backup)]
    public async Task A_job_whose_source_image_file_is_unlinked_while_it_runs_completes_from_the_open_descriptor(Kind kind)
    {
        using var dir = new TempDirectory();
        var (graph, device) = await StreamJobTests.OpenChainAsync(dir);
        byte[] expected, atEnd;
        await using (graph)
        {
            expected = await Qcow2Images.ReadAllAsync(device);
            var job = await StartAsync(graph, dir, kind, speed: 4L << 20);
            // Gone from the directory, as QEMU's open descriptor keeps it: reads and writes go on.
            File.Delete(dir.File("top.qcow2"));
            if (kind == Kind.Mirror)
            {
                var deadline = DateTime.UtcNow + Bound;
                job.SetSpeed(0);
                while (!job.GetInfo().Ready && !job.Completion.IsCompleted && DateTime.UtcNow < deadline)
                    await Task.Delay(1);
                await device.WriteAsync(5 << 20, Patterns.Fill(65536, 0x6d));
                Patterns.Fill(65536, 0x6d).CopyTo(expected, 5 << 20);
                job.Complete();
            }
            else
            {
                job.SetSpeed(0);
            }
            await job.Completion.WaitAsync(Bound);
            Assert.Empty(graph.QueryBlockJobs());
            Assert.Equal(expected, await Qcow2Images.ReadAllAsync(device));
            if (kind == Kind.Mirror)
                Assert.NotEqual("t", device.Root!.NodeName);
            atEnd = expected.ToArray();

            // The graph stays usable.
            await device.WriteAsync(7 << 20, Patterns.Fill(4096, 0x21));
            Patterns.Fill(4096, 0x21).CopyTo(expected, 7 << 20);
            Assert.Equal(expected, await Qcow2Images.ReadAllAsync(device));
        }
        Qcow2Images.AssertClean(dir.File("target.qcow2"));
        // The target holds the disk: after a mirror's switch-over, the device itself; a backup, the disk at its start
        // (no guest wrote during it).
        Assert.Equal(kind == Kind.Mirror ? expected : atEnd, Qcow2Images.OracleRead(dir.File("target.qcow2"), dir));
    }
}
