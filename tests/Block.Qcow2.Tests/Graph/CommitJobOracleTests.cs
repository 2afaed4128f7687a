using System.Text.Json.Nodes;
using Block.TestSupport;

namespace Block.Qcow2.Tests.Graph;

/// <summary>
/// <c>block-commit</c> below the active layer side by side with qemu-storage-daemon 7.2: replies, events, the base's
/// content and the overlay's recorded backing file.
/// </summary>
public sealed class CommitJobOracleTests
{
    private static JsonObject J(string json) => JsonNode.Parse(json)!.AsObject();

    private static JsonObject Commit(TempDirectory dir, string id, string? top, string? @base = null, long? speed = null, string? backingFile = null)
    {
        var o = new JsonObject { ["device"] = "t" };
        if (id.Length > 0)
            o["job-id"] = id;
        if (top != null)
            o["top"] = dir.File(top);
        if (@base != null)
            o["base"] = dir.File(@base);
        if (speed != null)
            o["speed"] = speed;
        if (backingFile != null)
            o["backing-file"] = backingFile;
        return o;
    }

    [Fact]
    public async Task Block_commit_refuses_bad_arguments_and_busy_nodes_as_qemu_storage_daemon_does()
    {
        using var dir = new TempDirectory();
        var s = StreamJobOracleTests.Chain(dir, baseFileReadOnly: false)
            .Command("block-commit", J("""{"device": "zz", "job-id": "c"}"""))
            .Command("block-commit", J("""{"device": "m", "job-id": "c"}"""))
            .Command("block-commit", J("""{"device": "tf", "job-id": "c"}"""))
            .Command("block-commit", J("""{"device": "t", "job-id": "c", "top": "zz"}"""))
            .Command("block-commit", J("""{"device": "t", "job-id": "c", "base": "zz"}"""))
            .Command("block-commit", Commit(dir, "c", "base.qcow2"))
            .Command("block-commit", Commit(dir, "c", "mid.qcow2", "mid.qcow2"))
            .Command("block-commit", Commit(dir, "c", "base.qcow2", "mid.qcow2"))
            .Command("block-commit", J("""{"device": "t", "job-id": "c", "backing-file": "x"}"""))
            .Command("block-commit", Commit(dir, "c", "mid.qcow2", speed: -1))
            .Command("block-commit", Commit(dir, "", "mid.qcow2"))
            .Command("block-commit", Commit(dir, "1c", "mid.qcow2"))
            .Command("block-commit", Commit(dir, "c", "mid.qcow2", speed: 1))
            .Poll("query-block-jobs", StreamJobOracleTests.FirstChunkDone)
            .Command("query-block-jobs")
            .Command("block-stream", J("""{"device": "t", "job-id": "s"}"""))
            .Command("block-stream", J("""{"device": "b", "job-id": "s2"}"""))
            .Command("block-commit", J("""{"device": "t", "job-id": "c2"}"""))
            .Command("block-job-complete", J("""{"device": "c"}"""))
            .Command("block-job-pause", J("""{"device": "c"}"""))
            .Command("query-block-jobs")
            .Command("block-job-resume", J("""{"device": "c"}"""))
            .Command("block-job-set-speed", J("""{"device": "c", "speed": 0}"""))
            .WaitEvent("BLOCK_JOB_COMPLETED")
            .Command("query-block-jobs")
            .Command("block-commit", Commit(dir, "c3", "mid.qcow2"));
        await s.RunAsync();
        s.AssertSameReplies();
        s.AssertSameEvents();
        StreamJobOracleTests.AssertSameImage(s, dir, "top.qcow2");
        Assert.Equal(0, QemuImg.Compare(s.QsdFile("base.qcow2"), dir.File("base.qcow2"), "qcow2", "qcow2"));
        Qcow2Images.AssertClean(dir.File("base.qcow2"));
    }

    [Theory]
    [InlineData(null, null)]
    [InlineData("base.qcow2", null)]
    [InlineData("base.qcow2", "recorded-name.qcow2")]
    public async Task Block_commit_leaves_the_base_and_overlay_qemu_storage_daemon_leaves(string? @base, string? backingFile)
    {
        using var dir = new TempDirectory();
        var s = StreamJobOracleTests.Chain(dir, baseFileReadOnly: false)
            .Command("block-commit", Commit(dir, "c", "mid.qcow2", @base, backingFile: backingFile))
            .WaitEvent("BLOCK_JOB_COMPLETED")
            .Command("query-block-jobs")
            .Command("block-stream", J("""{"device": "t", "job-id": "s"}"""))
            .WaitEvent("BLOCK_JOB_COMPLETED");
        await s.RunAsync();
        s.AssertSameReplies();
        s.AssertSameEvents();
        StreamJobOracleTests.AssertSameImage(s, dir, "top.qcow2");
        StreamJobOracleTests.AssertSameImage(s, dir, "base.qcow2");
    }
}
