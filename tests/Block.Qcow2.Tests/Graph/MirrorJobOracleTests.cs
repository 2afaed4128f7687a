using System.Text.Json.Nodes;
using Block.TestSupport;

namespace Block.Qcow2.Tests.Graph;

/// <summary>
/// <c>drive-mirror</c>, <c>blockdev-mirror</c> and the active <c>block-commit</c> side by side with
/// qemu-storage-daemon 7.2: replies, <c>BLOCK_JOB_*</c> events (type, device, len, offset) and the images left.
/// </summary>
public sealed class MirrorJobOracleTests
{
    private static JsonObject J(string json) => JsonNode.Parse(json)!.AsObject();

    /// <summary>Ready and napping (a ready job wakes every 100 ms, so both sides are seen idle soon after READY).</summary>
    private static bool ReadyIdle(JsonNode? jobs) => jobs is JsonArray { Count: 1 } a && (bool)a[0]!["ready"]! && !(bool)a[0]!["busy"]!;

    private static JsonObject DriveMirror(TempDirectory dir, string sync, string? extra = null)
    {
        var o = J(extra ?? "{}");
        o["device"] = "t";
        o["job-id"] ??= "m";
        o["target"] = dir.File("target.qcow2");
        o["sync"] = sync;
        return o;
    }

    [Fact]
    public async Task Mirror_commands_refuse_bad_arguments_as_qemu_storage_daemon_does()
    {
        using var dir = new TempDirectory();
        QemuImg.Create("qcow2", dir.File("other.qcow2"), "4M");
        QemuImg.Create("qcow2", dir.File("small.qcow2"), "1M");
        var s = StreamJobOracleTests.Chain(dir)
            .Blockdev("""{"driver": "qcow2", "node-name": "o", "file": {"driver": "file", "filename": "OTHER"}}""".Replace("OTHER", dir.File("other.qcow2")))
            .Blockdev("""{"driver": "qcow2", "node-name": "sm", "file": {"driver": "file", "filename": "SMALL"}}""".Replace("SMALL", dir.File("small.qcow2")))
            .Command("blockdev-mirror", J("""{"device": "zz", "target": "o", "sync": "full"}"""))
            .Command("blockdev-mirror", J("""{"device": "m", "target": "o", "sync": "full"}"""))
            .Command("blockdev-mirror", J("""{"device": "t", "target": "zz", "sync": "full"}"""))
            .Command("blockdev-mirror", J("""{"device": "t", "target": "o", "sync": "full", "granularity": 100}"""))
            .Command("blockdev-mirror", J("""{"device": "t", "target": "o", "sync": "full", "granularity": 3000}"""))
            .Command("blockdev-mirror", J("""{"device": "t", "target": "o", "sync": "incremental"}"""))
            .Command("blockdev-mirror", J("""{"device": "t", "target": "o", "sync": "full", "buf-size": -1}"""))
            .Command("blockdev-mirror", J("""{"device": "t", "target": "t", "sync": "full"}"""))
            .Command("blockdev-mirror", J("""{"device": "t", "target": "o", "sync": "full", "job-id": "1x"}"""))
            .Command("blockdev-mirror", J("""{"device": "t", "target": "o", "sync": "full", "speed": -1}"""))
            .Command("blockdev-mirror", J("""{"device": "t", "target": "o", "sync": "full", "replaces": "zz"}"""))
            .Command("blockdev-mirror", J("""{"device": "t", "target": "o", "sync": "full", "replaces": "m"}"""))
            .Command("blockdev-mirror", J("""{"device": "t", "target": "sm", "sync": "full"}"""))
            .Command("drive-mirror", DriveMirror(dir, "full", """{"replaces": "t"}"""))
            .Command("blockdev-mirror", J("""{"device": "t", "target": "o", "sync": "full", "job-id": "j", "speed": 1}"""))
            .Poll("query-block-jobs", StreamJobOracleTests.FirstChunkDone)
            .Command("blockdev-mirror", J("""{"device": "t", "target": "o", "sync": "full", "job-id": "j2"}"""))
            .Command("block-job-complete", J("""{"device": "j"}"""))
            .Command("block-job-cancel", J("""{"device": "j"}"""))
            .WaitEvent("BLOCK_JOB_CANCELLED")
            .Command("query-block-jobs");
        await s.RunAsync();
        s.AssertSameReplies();
        s.AssertSameEvents();
    }

    [Theory]
    [InlineData("full", null)]
    [InlineData("top", null)]
    [InlineData("none", null)]
    [InlineData("full", """{"granularity": 4096, "buf-size": 65536}""")]
    [InlineData("full", """{"node-name": "tgt", "replaces": "t"}""")]
    public async Task Drive_mirror_completed_leaves_the_target_qemu_storage_daemon_leaves(string sync, string? extra)
    {
        using var dir = new TempDirectory();
        var s = StreamJobOracleTests.Chain(dir).File("target.qcow2")
            .Command("drive-mirror", DriveMirror(dir, sync, extra))
            .WaitEvent("BLOCK_JOB_READY")
            .Poll("query-block-jobs", ReadyIdle)
            .Command("query-block-jobs")
            .Command("block-job-complete", J("""{"device": "m"}"""))
            .WaitEvent("BLOCK_JOB_COMPLETED")
            .Command("query-block-jobs");
        await s.RunAsync();
        s.AssertSameReplies();
        s.AssertSameEvents();
        StreamJobOracleTests.AssertSameImage(s, dir, "target.qcow2");
        StreamJobOracleTests.AssertSameImage(s, dir, "top.qcow2");
    }

    [Fact]
    public async Task Blockdev_mirror_cancelled_after_ready_leaves_a_consistent_target_and_sends_completed_as_qemu_storage_daemon_does()
    {
        using var dir = new TempDirectory();
        QemuImg.Create("qcow2", dir.File("target.qcow2"), "4M");
        QemuIo.RunChecked(dir.File("target.qcow2"), "qcow2", "write -P 0x99 3M 512k");
        var s = StreamJobOracleTests.Chain(dir).File("target.qcow2")
            .Blockdev("""{"driver": "qcow2", "node-name": "o", "file": {"driver": "file", "filename": "TARGET"}}""".Replace("TARGET", dir.File("target.qcow2")))
            .Command("blockdev-mirror", J("""{"device": "t", "job-id": "m", "target": "o", "sync": "full"}"""))
            .WaitEvent("BLOCK_JOB_READY")
            .Command("block-job-pause", J("""{"device": "m"}"""))
            .Command("query-block-jobs")
            .Command("block-job-resume", J("""{"device": "m"}"""))
            .Command("block-job-cancel", J("""{"device": "m"}"""))
            .WaitEvent("BLOCK_JOB_COMPLETED")
            .Command("query-block-jobs");
        await s.RunAsync();
        s.AssertSameReplies();
        s.AssertSameEvents();
        Assert.Equal(0, QemuImg.Compare(s.QsdFile("target.qcow2"), dir.File("target.qcow2"), "qcow2", "qcow2"));
        Qcow2Images.AssertClean(dir.File("target.qcow2"));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Active_commit_completed_or_cancelled_after_ready_leaves_the_base_qemu_storage_daemon_leaves(bool complete)
    {
        using var dir = new TempDirectory();
        var s = StreamJobOracleTests.Chain(dir, baseFileReadOnly: false)
            .Command("block-commit", J("""{"device": "t", "job-id": "c"}"""))
            .WaitEvent("BLOCK_JOB_READY")
            .Poll("query-block-jobs", ReadyIdle)
            .Command("query-block-jobs")
            .Command(complete ? "block-job-complete" : "block-job-cancel", J("""{"device": "c"}"""))
            .WaitEvent("BLOCK_JOB_COMPLETED")
            .Command("query-block-jobs");
        await s.RunAsync();
        s.AssertSameReplies();
        s.AssertSameEvents();
        StreamJobOracleTests.AssertSameImage(s, dir, "base.qcow2");
        StreamJobOracleTests.AssertSameImage(s, dir, "top.qcow2");
    }

    [Fact]
    public async Task Active_commit_cancelled_before_ready_sends_cancelled_as_qemu_storage_daemon_does()
    {
        using var dir = new TempDirectory();
        var s = StreamJobOracleTests.Chain(dir, baseFileReadOnly: false)
            .Command("block-commit", J("""{"device": "t", "job-id": "c", "speed": 1}"""))
            .Poll("query-block-jobs", StreamJobOracleTests.FirstChunkDone)
            .Command("block-job-complete", J("""{"device": "c"}"""))
            .Command("block-job-cancel", J("""{"device": "c"}"""))
            .WaitEvent("BLOCK_JOB_CANCELLED")
            .Command("query-block-jobs");
        await s.RunAsync();
        s.AssertSameReplies();
        s.AssertSameEvents();
        StreamJobOracleTests.AssertSameImage(s, dir, "top.qcow2");
    }

    [Theory]
    [InlineData("stop", 5)]
    [InlineData("report", 5)]
    [InlineData("ignore", 5)]
    [InlineData("enospc", 28)]
    public async Task A_source_read_error_under_each_policy_gives_qemu_storage_daemons_events_and_target(string policy, int errno)
    {
        using var dir = new TempDirectory();
        StreamJobOracleTests.Chain(dir);
        // top's data (guest 2 MiB) fails once, where its first host cluster is.
        var map = JsonNode.Parse(QemuImg.MapJsonText(dir.File("top.qcow2"), "qcow2"))!.AsArray();
        long host = map.Single(e => (long)e!["start"]! == 2 << 20 && (bool)e["data"]!)!["offset"]!.GetValue<long>();
        string td = new JsonObject
        {
            ["driver"] = "blkdebug", ["node-name"] = "td", ["image"] = "tf",
            ["inject-error"] = new JsonArray(new JsonObject { ["event"] = "read_aio", ["sector"] = host / 512, ["errno"] = errno, ["once"] = true }),
        }.ToJsonString();
        var s = new QsdScenario(dir)
            .Blockdev("""{"driver": "file", "node-name": "bf", "filename": "PATH"}""".Replace("PATH", dir.File("base.qcow2")))
            .Blockdev("""{"driver": "qcow2", "node-name": "b", "file": "bf", "read-only": true}""")
            .Blockdev("""{"driver": "file", "node-name": "mf", "filename": "PATH"}""".Replace("PATH", dir.File("mid.qcow2")))
            .Blockdev("""{"driver": "qcow2", "node-name": "m", "file": "mf", "backing": "b", "read-only": true}""")
            .Blockdev("""{"driver": "file", "node-name": "tf", "filename": "PATH"}""".Replace("PATH", dir.File("top.qcow2")))
            .Blockdev(td)
            .Blockdev("""{"driver": "qcow2", "node-name": "t", "file": "td", "backing": "m"}""")
            .File("base.qcow2").File("mid.qcow2").File("top.qcow2").File("target.qcow2")
            .Command("drive-mirror", DriveMirror(dir, "top", $$"""{"on-source-error": "{{policy}}"}"""))
            .WaitEvent("BLOCK_JOB_ERROR");
        if (policy is "stop" or "enospc")
        {
            s.Poll("query-block-jobs", jobs => jobs is JsonArray { Count: 1 } a && !(bool)a[0]!["busy"]!)
                .Command("query-block-jobs")
                .Command("block-job-resume", J("""{"device": "m"}"""));
        }
        if (policy != "report")
        {
            s.WaitEvent("BLOCK_JOB_READY")
                .Command("block-job-complete", J("""{"device": "m"}"""));
        }
        s.WaitEvent("BLOCK_JOB_COMPLETED").Command("query-block-jobs");
        await s.RunAsync();
        s.AssertSameReplies();
        s.AssertSameEvents();
        if (policy != "report")
            StreamJobOracleTests.AssertSameImage(s, dir, "target.qcow2");
    }

    [Theory]
    [InlineData("stop", 5)]
    [InlineData("report", 5)]
    [InlineData("ignore", 5)]
    [InlineData("enospc", 28)]
    [InlineData("enospc", 5)]
    public async Task A_target_write_error_under_each_policy_gives_qemu_storage_daemons_events_state_and_target(string policy, int errno)
    {
        using var dir = new TempDirectory();
        QemuImg.Create("qcow2", dir.File("src.qcow2"), "4M");
        QemuIo.RunChecked(dir.File("src.qcow2"), "qcow2", "write -P 0x22 0 3M", "write -z 3M 1M");
        QemuImg.Create("qcow2", dir.File("target.qcow2"), "4M");
        // The target's first data write fails once (ENOSPC: a full file system as the guest sees it).
        string td = new JsonObject
        {
            ["driver"] = "blkdebug", ["node-name"] = "td", ["image"] = "tf",
            ["inject-error"] = new JsonArray(new JsonObject { ["event"] = "write_aio", ["errno"] = errno, ["once"] = true }),
        }.ToJsonString();
        var s = new QsdScenario(dir)
            .Blockdev("""{"driver": "file", "node-name": "sf", "filename": "PATH"}""".Replace("PATH", dir.File("src.qcow2")))
            .Blockdev("""{"driver": "qcow2", "node-name": "s", "file": "sf"}""")
            .Blockdev("""{"driver": "file", "node-name": "tf", "filename": "PATH"}""".Replace("PATH", dir.File("target.qcow2")))
            .Blockdev(td)
            .Blockdev("""{"driver": "qcow2", "node-name": "t", "file": "td"}""")
            .File("src.qcow2").File("target.qcow2")
            .Command("blockdev-mirror", new JsonObject
            {
                ["device"] = "s", ["job-id"] = "m", ["target"] = "t", ["sync"] = "full", ["on-target-error"] = policy,
            })
            .WaitEvent("BLOCK_JOB_ERROR");
        bool stops = policy == "stop" || (policy == "enospc" && errno == 28);
        bool fails = policy == "report" || (policy == "enospc" && errno != 28);
        if (stops)
        {
            s.Poll("query-block-jobs", jobs => jobs is JsonArray { Count: 1 } a && !(bool)a[0]!["busy"]!)
                .Command("query-block-jobs")
                .Command("block-job-resume", J("""{"device": "m"}"""));
        }
        if (!fails)
        {
            s.WaitEvent("BLOCK_JOB_READY")
                .Command("block-job-complete", J("""{"device": "m"}"""));
        }
        s.WaitEvent("BLOCK_JOB_COMPLETED").Command("query-block-jobs");
        await s.RunAsync();
        s.AssertSameReplies();
        if (fails)
        {
            // Where the copy stopped depends on how far each side had got in parallel: compare type, device, len and error.
            foreach (var e in s.QsdEvents.Concat(s.OurEvents))
            {
                (e["data"] as JsonObject)?.Remove("offset");
                (e["data"] as JsonObject)?.Remove("len");
            }
        }
        s.AssertSameEvents();
        if (!fails)
        {
            Assert.Equal(0, QemuImg.Compare(s.QsdFile("target.qcow2"), dir.File("target.qcow2"), "qcow2", "qcow2"));
            Assert.Equal(0, QemuImg.Compare(dir.File("src.qcow2"), dir.File("target.qcow2"), "qcow2", "qcow2"));
            // Nothing corrupt: the failed allocating write leaves at most a leaked cluster in our qcow2 (exit 3).
            var ours = QemuImg.Check(dir.File("target.qcow2"), "qcow2");
            Assert.True(ours.ExitCode is 0 or 3, ours.Stdout);
        }
    }
}
