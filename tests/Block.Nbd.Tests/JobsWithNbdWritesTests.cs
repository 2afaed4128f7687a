using Block.Events;
using Block.Qapi;
using Block.TestSupport;

namespace Block.Nbd.Tests;

/// <summary>
/// Block jobs on a disk a guest writes through our NBD export (qemu-io as the NBD client) while the job runs: what the
/// target holds at the end.
/// </summary>
public sealed class JobsWithNbdWritesTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(60);

    /// <summary>An 8 MiB qcow2 image, 0x5a in its first 6 MiB.</summary>
    private static string MakeSource(TempDirectory dir)
    {
        string path = dir.File("src.qcow2");
        QemuImg.Create("qcow2", path, "8M");
        QemuIo.RunChecked(path, "qcow2", "write -P 0x5a 0 6M");
        return path;
    }

    /// <summary>Thirty writes of 4–128 KiB at places a fixed seed picks, through the export in one qemu-io session.</summary>
    private static Task WriteThroughExportAsync(string socket) => Task.Run(() =>
    {
        var random = new Random(14);
        var args = new List<string> { "-f", "raw" };
        for (int i = 0; i < 30; i++)
        {
            long offset = random.Next(0, 2048 - 32) * 4096L;
            int length = random.Next(1, 33) * 4096;
            args.AddRange(["-c", $"write -q -P 0x{random.Next(1, 255):x2} {offset} {length}"]);
        }
        args.Add($"nbd+unix:///disk?socket={socket}");
        var r = ProcessRunner.Run(QemuIo.Path, args).EnsureSuccess("qemu-io over NBD");
        Assert.DoesNotContain("failed", r.Stdout + r.Stderr, StringComparison.Ordinal);
    });

    [Fact]
    public async Task A_mirror_while_a_guest_writes_through_the_nbd_export_completes_onto_a_target_equal_to_the_source()
    {
        using var dir = new TempDirectory();
        string source = MakeSource(dir), target = dir.File("dst.qcow2");
        await using (var server = await NbdTestServer.StartAsync(dir.File("nbd.sock"), source, "qcow2", "disk"))
        {
            var ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            server.Graph.EventRaised += e =>
            {
                if (e is BlockJobReadyEvent)
                    ready.TrySetResult();
            };
            // Throttled, so that the writes land while the copy runs (the assertion holds wherever they land).
            var job = await server.Graph.DriveMirrorAsync("m", server.Backend.Root!.NodeName, target, MirrorSyncMode.Full,
                format: "qcow2", speed: 1 << 20);
            await WriteThroughExportAsync(server.Socket);
            job.SetSpeed(0);
            await ready.Task.WaitAsync(Limit);
            job.Complete();
            await job.Completion.WaitAsync(Limit);
            // The export's device now writes the target.
            Assert.Equal(target, server.Backend.Root!.Filename);
        }
        Assert.Equal(0, QemuImg.Compare(source, target, "qcow2", "qcow2"));
        Assert.Equal(0, QemuImg.Check(target, "qcow2").ExitCode);
        Assert.Equal(0, QemuImg.Check(source, "qcow2").ExitCode);
    }

    [Fact]
    public async Task A_backup_while_a_guest_writes_through_the_nbd_export_holds_the_disk_as_it_was_at_job_start()
    {
        using var dir = new TempDirectory();
        string source = MakeSource(dir), target = dir.File("bak.qcow2"), atStart = dir.File("start.qcow2");
        File.Copy(source, atStart);
        await using (var server = await NbdTestServer.StartAsync(dir.File("nbd.sock"), source, "qcow2", "disk"))
        {
            var job = await server.Graph.DriveBackupAsync("b", server.Backend.Root!.NodeName, target, MirrorSyncMode.Full,
                format: "qcow2", speed: 1 << 20);
            await WriteThroughExportAsync(server.Socket);
            job.SetSpeed(0);
            await job.Completion.WaitAsync(Limit);
        }
        Assert.Equal(0, QemuImg.Compare(atStart, target, "qcow2", "qcow2"));
        Assert.NotEqual(0, QemuImg.Compare(atStart, source, "qcow2", "qcow2"));
        Assert.Equal(0, QemuImg.Check(target, "qcow2").ExitCode);
    }
}
