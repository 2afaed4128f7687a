using System.Text.Json.Nodes;
using Block.TestSupport;

namespace Block.Qcow2.Tests.Graph;

/// <summary>
/// <c>block-stream</c> and the job commands side by side with qemu-storage-daemon 7.2: the same session gives the same
/// replies (error classes and texts included) and the same <c>BLOCK_JOB_*</c> events, and leaves images that
/// qemu-img finds equal, clean and naming the same backing file.
/// </summary>
public sealed class StreamJobOracleTests
{
    private static JsonObject J(string json) => JsonNode.Parse(json)!.AsObject();

    /// <summary>
    /// base.qcow2 (4 MiB) ← mid.qcow2 ← top.qcow2, with data in each: base 0–1 MiB, mid 1–2 MiB, top 2–2.5 MiB; nodes
    /// b and m read-only (m's file node writable unless asked, so that a stream into m can reopen it), t writable,
    /// plus a null node.
    /// </summary>
    internal static QsdScenario Chain(TempDirectory dir, bool midFileReadOnly = false, bool baseFileReadOnly = true)
    {
        QemuImg.Create("qcow2", dir.File("base.qcow2"), "4M");
        QemuIo.RunChecked(dir.File("base.qcow2"), "qcow2", "write -P 0x11 0 1M");
        QemuImg.Run("create", "-q", "-f", "qcow2", "-b", dir.File("base.qcow2"), "-F", "qcow2", dir.File("mid.qcow2")).EnsureSuccess("qemu-img create");
        QemuIo.RunChecked(dir.File("mid.qcow2"), "qcow2", "write -P 0x22 1M 1M");
        QemuImg.Run("create", "-q", "-f", "qcow2", "-b", dir.File("mid.qcow2"), "-F", "qcow2", dir.File("top.qcow2")).EnsureSuccess("qemu-img create");
        QemuIo.RunChecked(dir.File("top.qcow2"), "qcow2", "write -P 0x33 2M 512k");
        return new QsdScenario(dir)
            .Blockdev(File("bf", dir.File("base.qcow2"), readOnly: baseFileReadOnly))
            .Blockdev(Qcow2("b", "bf", readOnly: true))
            .Blockdev(File("mf", dir.File("mid.qcow2"), readOnly: midFileReadOnly))
            .Blockdev(Qcow2("m", "mf", backing: "b", readOnly: true))
            .Blockdev(File("tf", dir.File("top.qcow2")))
            .Blockdev(Qcow2("t", "tf", backing: "m"))
            .Blockdev("""{"driver": "null-co", "node-name": "n0"}""")
            .File("base.qcow2").File("mid.qcow2").File("top.qcow2");
    }

    private static string File(string nodeName, string path, bool readOnly = false) =>
        new JsonObject { ["driver"] = "file", ["node-name"] = nodeName, ["filename"] = path, ["read-only"] = readOnly }.ToJsonString();

    private static string Qcow2(string nodeName, string file, string? backing = null, bool readOnly = false)
    {
        var o = new JsonObject { ["driver"] = "qcow2", ["node-name"] = nodeName, ["file"] = file, ["read-only"] = readOnly };
        if (backing != null)
            o["backing"] = backing;
        return o.ToJsonString();
    }

    internal static void AssertSameImage(QsdScenario s, TempDirectory dir, string name)
    {
        string ours = dir.File(name), theirs = s.QsdFile(name);
        Assert.Equal(0, QemuImg.Compare(theirs, ours, "qcow2", "qcow2"));
        Qcow2Images.AssertClean(ours);
        Qcow2Images.AssertClean(theirs);
        var a = QemuImg.Info(theirs, "qcow2");
        var b = QemuImg.Info(ours, "qcow2");
        Assert.Equal((string?)a["backing-filename"], (string?)b["backing-filename"]);
        Assert.Equal((string?)a["backing-filename-format"], (string?)b["backing-filename-format"]);
    }

    internal static bool FirstChunkDone(JsonNode? jobs) =>
        jobs is JsonArray { Count: 1 } a && (long)a[0]!["offset"]! > 0 && !(bool)a[0]!["busy"]!;

    [Fact]
    public async Task Block_stream_refuses_bad_arguments_and_busy_nodes_as_qemu_storage_daemon_does()
    {
        using var dir = new TempDirectory();
        var s = Chain(dir, midFileReadOnly: true)
            .Command("block-stream", J("""{"device": "t"}"""))
            .Command("block-stream", J("""{"device": "m", "job-id": "ro", "base-node": "b"}"""))
            .Command("block-stream", J("""{"device": "nope", "job-id": "j"}"""))
            .Command("block-stream", J("""{"device": "t", "job-id": "1j"}"""))
            .Command("block-stream", J("""{"device": "t", "job-id": "j", "speed": -1}"""))
            .Command("block-stream", J("""{"device": "t", "job-id": "j", "base": "x", "base-node": "b"}"""))
            .Command("block-stream", J("""{"device": "t", "job-id": "j", "base-node": "zz"}"""))
            .Command("block-stream", J("""{"device": "t", "job-id": "j", "base": "zz"}"""))
            .Command("block-stream", J("""{"device": "t", "job-id": "j", "backing-file": "zz"}"""))
            .Command("block-stream", J("""{"device": "t", "job-id": "j", "base-node": "t"}"""))
            .Command("block-stream", J("""{"device": "t", "job-id": "j", "base-node": "tf"}"""))
            .Command("block-job-set-speed", J("""{"device": "j", "speed": 1}"""))
            .Command("block-job-pause", J("""{"device": "j"}"""))
            .Command("block-job-resume", J("""{"device": "j"}"""))
            .Command("block-job-cancel", J("""{"device": "j"}"""))
            .Command("block-job-complete", J("""{"device": "j"}"""))
            .Command("query-block-jobs")
            // 1 B/s: the first 512 KiB chunk goes at once, then the job sleeps for days.
            .Command("block-stream", J("""{"device": "t", "job-id": "j", "speed": 1}"""))
            .Poll("query-block-jobs", FirstChunkDone)
            .Command("block-stream", J("""{"device": "t", "job-id": "j2"}"""))
            .Command("block-stream", J("""{"device": "m", "job-id": "j"}"""))
            .Command("block-stream", J("""{"device": "m", "job-id": "j3"}"""))
            .Command("block-stream", J("""{"device": "n0", "job-id": "j"}"""))
            .Command("block-job-complete", J("""{"device": "j"}"""))
            .Command("block-job-pause", J("""{"device": "j"}"""))
            .Command("block-job-pause", J("""{"device": "j"}"""))
            .Command("query-block-jobs")
            .Command("block-job-cancel", J("""{"device": "j"}"""))
            .Command("block-job-complete", J("""{"device": "j"}"""))
            .Command("block-job-set-speed", J("""{"device": "j", "speed": -1}"""))
            .Command("block-job-set-speed", J("""{"device": "j", "speed": 2}"""))
            .Command("block-job-resume", J("""{"device": "j"}"""))
            .Command("block-job-resume", J("""{"device": "j"}"""))
            .Command("block-job-set-speed", J("""{"device": "j", "speed": 0}"""))
            .WaitEvent("BLOCK_JOB_COMPLETED")
            .Command("query-block-jobs")
            .Command("block-job-cancel", J("""{"device": "j"}"""));
        await s.RunAsync();
        s.AssertSameReplies();
        s.AssertSameEvents();
        AssertSameImage(s, dir, "top.qcow2");
    }

    [Theory]
    [InlineData("""{"device": "t", "job-id": "s"}""")]
    [InlineData("""{"device": "t", "job-id": "s", "base-node": "b"}""")]
    [InlineData("""{"device": "t", "job-id": "s", "base-node": "b", "backing-file": "elsewhere.qcow2"}""")]
    [InlineData("""{"device": "t", "job-id": "s", "base-node": "m"}""")]
    [InlineData("""{"device": "m", "job-id": "s", "base-node": "b"}""")]
    [InlineData("""{"device": "m", "job-id": "s", "on-error": "stop"}""")]
    public async Task Block_stream_leaves_the_image_and_chain_qemu_storage_daemon_leaves(string arguments)
    {
        using var dir = new TempDirectory();
        var s = Chain(dir)
            .Command("block-stream", J(arguments))
            .WaitEvent("BLOCK_JOB_COMPLETED")
            .Command("query-block-jobs")
            .Command("block-stream", J("""{"device": "t", "job-id": "again"}"""))
            .WaitEvent("BLOCK_JOB_COMPLETED");
        await s.RunAsync();
        s.AssertSameReplies();
        s.AssertSameEvents();
        AssertSameImage(s, dir, "top.qcow2");
        AssertSameImage(s, dir, "mid.qcow2");
    }

    [Fact]
    public async Task Block_stream_by_base_file_name_records_that_name_as_qemu_storage_daemon_does()
    {
        using var dir = new TempDirectory();
        var s = Chain(dir)
            .Command("block-stream", new JsonObject { ["device"] = "t", ["job-id"] = "s", ["base"] = dir.File("base.qcow2") })
            .WaitEvent("BLOCK_JOB_COMPLETED");
        await s.RunAsync();
        s.AssertSameReplies();
        s.AssertSameEvents();
        AssertSameImage(s, dir, "top.qcow2");
    }

    [Fact]
    public async Task A_cancelled_stream_keeps_the_chain_and_sends_block_job_cancelled_as_qemu_storage_daemon_does()
    {
        using var dir = new TempDirectory();
        var s = Chain(dir)
            .Command("block-stream", J("""{"device": "t", "job-id": "s", "speed": 1}"""))
            .Poll("query-block-jobs", FirstChunkDone)
            .Command("block-job-pause", J("""{"device": "s"}"""))
            .Command("block-job-cancel", J("""{"device": "s", "force": true}"""))
            .WaitEvent("BLOCK_JOB_CANCELLED")
            .Command("query-block-jobs")
            // A job still running when the daemon quits is cancelled.
            .Command("block-stream", J("""{"device": "t", "job-id": "left", "speed": 1}"""))
            .Poll("query-block-jobs", FirstChunkDone);
        await s.RunAsync();
        s.AssertSameReplies();
        s.AssertSameEvents();
        AssertSameImage(s, dir, "top.qcow2");
    }

    [Theory]
    [InlineData("stop", 5)]
    [InlineData("report", 5)]
    [InlineData("ignore", 5)]
    [InlineData("enospc", 28)]
    [InlineData("enospc", 5)]
    public async Task A_read_error_under_each_policy_gives_qemu_storage_daemons_events_state_and_images(string policy, int errno)
    {
        using var dir = new TempDirectory();
        var s = Chain(dir);
        // mid's data (guest 1 MiB) fails once, where its first host cluster is.
        var map = JsonNode.Parse(QemuImg.MapJsonText(dir.File("mid.qcow2"), "qcow2"))!.AsArray();
        long host = map.Single(e => (long)e!["start"]! == 1 << 20 && (bool)e["data"]!)!["offset"]!.GetValue<long>();
        string md = new JsonObject
        {
            ["driver"] = "blkdebug", ["node-name"] = "md", ["image"] = "mf",
            ["inject-error"] = new JsonArray(new JsonObject { ["event"] = "read_aio", ["sector"] = host / 512, ["errno"] = errno, ["once"] = true }),
        }.ToJsonString();
        s = new QsdScenario(dir)
            .Blockdev(File("bf", dir.File("base.qcow2")))
            .Blockdev(Qcow2("b", "bf", readOnly: true))
            .Blockdev(File("mf", dir.File("mid.qcow2")))
            .Blockdev(md)
            .Blockdev(Qcow2("m", "md", backing: "b", readOnly: true))
            .Blockdev(File("tf", dir.File("top.qcow2")))
            .Blockdev(Qcow2("t", "tf", backing: "m"))
            .File("base.qcow2").File("mid.qcow2").File("top.qcow2")
            .Command("block-stream", new JsonObject { ["device"] = "t", ["job-id"] = "s", ["on-error"] = policy })
            .WaitEvent("BLOCK_JOB_ERROR");
        bool stops = policy == "stop" || (policy == "enospc" && errno == 28);
        if (stops)
        {
            s.Poll("query-block-jobs", jobs => jobs is JsonArray { Count: 1 } a && !(bool)a[0]!["busy"]!)
                .Command("query-block-jobs")
                .Command("block-job-cancel", J("""{"device": "s"}"""))
                .Command("block-job-resume", J("""{"device": "s"}"""));
        }
        s.WaitEvent("BLOCK_JOB_COMPLETED").Command("query-block-jobs");
        await s.RunAsync();
        s.AssertSameReplies();
        s.AssertSameEvents();
        AssertSameImage(s, dir, "top.qcow2");
    }
}
