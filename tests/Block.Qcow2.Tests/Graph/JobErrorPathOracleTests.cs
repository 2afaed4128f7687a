using System.Text.Json.Nodes;
using Block.Graph;
using Block.TestSupport;

namespace Block.Qcow2.Tests.Graph;

/// <summary>
/// Jobs on their error paths side by side with qemu-storage-daemon 7.2: a ready mirror stopped by a target error and
/// resumed, a source whose backing file fails on every read from some point on, and drained sections (a snapshot of
/// an unrelated node drains everything) while a job runs or is paused by the user.
/// </summary>
public sealed class JobErrorPathOracleTests
{
    private static JsonObject J(string json) => JsonNode.Parse(json)!.AsObject();

    private static bool Idle(JsonNode? jobs) => jobs is JsonArray { Count: 1 } a && !(bool)a[0]!["busy"]!;

    /// <summary>Ready, everything copied, napping.</summary>
    private static bool ReadyInSync(JsonNode? jobs) =>
        Idle(jobs) && (bool)jobs![0]!["ready"]! && (long)jobs[0]!["offset"]! == (long)jobs[0]!["len"]!;

    [Fact]
    public async Task A_ready_mirror_stopped_by_a_target_error_resumes_ready_and_completes_as_qemu_storage_daemon_does()
    {
        using var dir = new TempDirectory();
        QemuImg.Create("qcow2", dir.File("src.qcow2"), "4M");
        QemuIo.RunChecked(dir.File("src.qcow2"), "qcow2", "write -P 0x22 0 1M");
        QemuImg.Create("raw", dir.File("t.raw"), "4M");
        // The target is raw, so a guest offset is a file offset: the first write at 3 MiB fails, and only the guest's
        // write after READY goes there.
        string td = new JsonObject
        {
            ["driver"] = "blkdebug", ["node-name"] = "td", ["image"] = "tf",
            ["inject-error"] = new JsonArray(new JsonObject { ["event"] = "write_aio", ["sector"] = (3 << 20) / 512, ["errno"] = 5, ["once"] = true }),
        }.ToJsonString();
        BlockBackend? device = null;
        string socket = dir.File("nbd.sock");
        var s = new QsdScenario(dir)
            .Blockdev(BackupJobOracleTests.FileNode("sf", dir.File("src.qcow2")))
            .Blockdev(BackupJobOracleTests.Qcow2Node("s", "sf"))
            .Blockdev(BackupJobOracleTests.FileNode("tf", dir.File("t.raw")))
            .Blockdev(td)
            .Blockdev("""{"driver": "raw", "node-name": "t", "file": "td"}""")
            .Device(["--nbd-server", $"addr.type=unix,addr.path={socket}", "--export", "type=nbd,id=e0,node-name=s,name=disk,writable=on"],
                graph =>
                {
                    device = graph.CreateBackend(graph.FindNode("s")!);
                    return Task.CompletedTask;
                })
            .File("src.qcow2").File("t.raw")
            .Command("blockdev-mirror", J("""{"device": "s", "job-id": "m", "target": "t", "sync": "top", "on-target-error": "stop"}"""))
            .WaitEvent("BLOCK_JOB_READY")
            .Poll("query-block-jobs", ReadyInSync)
            .Command("query-block-jobs");
        BackupJobOracleTests.Write(s, dir, () => device, 0x5a, 3 << 20, 65536);
        s.WaitEvent("BLOCK_JOB_ERROR")
            .Poll("query-block-jobs", Idle)
            .Command("query-block-jobs")
            .Command("block-job-resume", J("""{"device": "m"}"""))
            .Poll("query-block-jobs", ReadyInSync)
            .Command("query-block-jobs")
            .Command("block-job-complete", J("""{"device": "m"}"""))
            .WaitEvent("BLOCK_JOB_COMPLETED")
            .Command("query-block-jobs");
        await s.RunAsync();
        s.AssertSameReplies();
        BackupJobOracleTests.AssertSameJobEvents(s);
        Assert.Equal(0, QemuImg.Compare(s.QsdFile("t.raw"), dir.File("t.raw"), "raw", "raw"));
        Assert.Equal(0, QemuImg.Compare(dir.File("src.qcow2"), dir.File("t.raw"), "qcow2", "raw"));
        Qcow2Images.AssertClean(dir.File("src.qcow2"));
    }

    /// <summary>
    /// The chain base ← mid ← top of <see cref="StreamJobOracleTests.Chain"/>, with every read of mid's data failing
    /// (blkdebug under mid, not once), a target for the job, and what a client does with the graph afterwards.
    /// </summary>
    [Theory]
    [InlineData("blockdev-mirror", "report")]
    [InlineData("blockdev-mirror", "stop")]
    [InlineData("blockdev-backup", "report")]
    [InlineData("blockdev-backup", "stop")]
    public async Task A_source_backing_file_failing_mid_job_applies_the_policy_and_leaves_a_usable_graph_as_qemu_storage_daemon_does(string command, string policy)
    {
        using var dir = new TempDirectory();
        StreamJobOracleTests.Chain(dir);
        QemuImg.Create("qcow2", dir.File("target.qcow2"), "4M");
        // mid's data (guest 1 MiB) fails wherever its first host cluster is read, as a backing file gone bad would.
        var map = JsonNode.Parse(QemuImg.MapJsonText(dir.File("mid.qcow2"), "qcow2"))!.AsArray();
        long host = map.First(e => (long)e!["start"]! == 1 << 20 && (bool)e["data"]!)!["offset"]!.GetValue<long>();
        string md = new JsonObject
        {
            ["driver"] = "blkdebug", ["node-name"] = "md", ["image"] = "mf",
            ["inject-error"] = new JsonArray(new JsonObject { ["event"] = "read_aio", ["sector"] = host / 512, ["errno"] = 5 }),
        }.ToJsonString();
        var s = new QsdScenario(dir)
            .Blockdev(BackupJobOracleTests.FileNode("bf", dir.File("base.qcow2")))
            .Blockdev(BackupJobOracleTests.Qcow2Node("b", "bf", readOnly: true))
            .Blockdev(BackupJobOracleTests.FileNode("mf", dir.File("mid.qcow2")))
            .Blockdev(md)
            .Blockdev(BackupJobOracleTests.Qcow2Node("m", "md", backing: "b", readOnly: true))
            .Blockdev(BackupJobOracleTests.FileNode("tf", dir.File("top.qcow2")))
            .Blockdev(BackupJobOracleTests.Qcow2Node("t", "tf", backing: "m"))
            .Blockdev(BackupJobOracleTests.FileNode("of", dir.File("target.qcow2")))
            .Blockdev(BackupJobOracleTests.Qcow2Node("o", "of"))
            .File("base.qcow2").File("mid.qcow2").File("top.qcow2").File("target.qcow2")
            .Command(command, new JsonObject
            {
                ["device"] = "t", ["job-id"] = "j", ["target"] = "o", ["sync"] = "full", ["on-source-error"] = policy,
            })
            .WaitEvent("BLOCK_JOB_ERROR");
        if (policy == "stop")
        {
            // Stopped; resumed, it fails again on the same read and stops again; a forced cancel ends it.
            s.Poll("query-block-jobs", Idle)
                .Command("query-block-jobs")
                .Command("block-job-resume", J("""{"device": "j"}"""))
                .WaitEvent("BLOCK_JOB_ERROR")
                .Poll("query-block-jobs", Idle)
                .Command("query-block-jobs")
                .Command("block-job-cancel", J("""{"device": "j"}"""))
                .Command("block-job-cancel", J("""{"device": "j", "force": true}"""))
                .WaitEvent("BLOCK_JOB_CANCELLED");
        }
        else
        {
            s.WaitEvent("BLOCK_JOB_COMPLETED");
        }
        // The graph stays usable: the target and the whole chain can be deleted, in order.
        s.Command("query-block-jobs")
            .Command("blockdev-del", J("""{"node-name": "o"}"""))
            .Command("blockdev-del", J("""{"node-name": "of"}"""))
            .Command("blockdev-del", J("""{"node-name": "t"}"""))
            .Command("blockdev-del", J("""{"node-name": "tf"}"""))
            .Command("blockdev-del", J("""{"node-name": "m"}"""))
            .Command("blockdev-del", J("""{"node-name": "md"}"""))
            .Command("blockdev-del", J("""{"node-name": "mf"}"""))
            .Command("blockdev-del", J("""{"node-name": "b"}"""))
            .Command("blockdev-del", J("""{"node-name": "bf"}"""))
            .Command("query-named-block-nodes");
        await s.RunAsync();
        if (policy == "report")
        {
            // Where the copy stopped depends on how far each side had got in parallel.
            foreach (var e in s.QsdEvents.Concat(s.OurEvents))
                (e["data"] as JsonObject)?.Remove("offset");
        }
        s.AssertSameReplies();
        BackupJobOracleTests.AssertSameJobEvents(s);
        foreach (var f in new[] { "base.qcow2", "mid.qcow2", "top.qcow2" })
            StreamJobOracleTests.AssertSameImage(s, dir, f);
        // The target is whatever part was copied, but never corrupt.
        var check = QemuImg.Check(dir.File("target.qcow2"), "qcow2");
        Assert.True(check.ExitCode is 0 or 3, check.Stdout);
    }
}
