using System.Text.Json.Nodes;
using Block.TestSupport;

namespace Block.Cli.Tests.Serve;

/// <summary>
/// Mirror and backup onto a target whose file system really runs full, on qemu-storage-daemon 7.2 and on
/// <c>blk serve</c>, each in a mount namespace of its own with the target on a small tmpfs: the same session gives the
/// same replies (io-status included) and <c>BLOCK_JOB_*</c> events, report fails the job with "No space left on
/// device", stop and enospc pause it until space is made and <c>block-job-resume</c> finishes it. The source (on the
/// ordinary disk) stays intact, and the target ends equal to it and clean.
/// </summary>
public sealed class JobFullFileSystemOracleTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    private static JsonObject J(string json) => JsonNode.Parse(json)!.AsObject();

    /// <summary>What one side did: its replies in order, its job events, and where its target was copied out to.</summary>
    private sealed record Run(List<JsonObject> Replies, List<JsonObject> Events, string Target);

    private static bool Idle(JsonNode? jobs) => jobs is JsonArray { Count: 1 } a && !(bool)a[0]!["busy"]!;

    private static bool ReadyInSync(JsonNode? jobs) =>
        Idle(jobs) && (bool)jobs![0]!["ready"]! && (long)jobs[0]!["offset"]! == (long)jobs[0]!["len"]!;

    private static async Task WaitEventsAsync(QemuStorageDaemon daemon, string side, string name, int count)
    {
        var deadline = DateTime.UtcNow + Bound;
        while (daemon.Qmp.Events.Count(e => (string?)e["event"] == name) < count)
        {
            Assert.True(DateTime.UtcNow < deadline,
                $"{side}: no {name} #{count}; events: {string.Join(", ", daemon.Qmp.Events.Select(e => e.ToJsonString()))}\nstderr: {daemon.Stderr}");
            await Task.Delay(10);
        }
    }

    private static async Task PollAsync(QemuStorageDaemon daemon, string command, Func<JsonNode?, bool> until)
    {
        var deadline = DateTime.UtcNow + Bound;
        while (true)
        {
            var value = (await daemon.ExecuteAsync(command))["return"];
            if (until(value))
                return;
            Assert.True(DateTime.UtcNow < deadline, $"state not reached: {value?.ToJsonString()}");
            await Task.Delay(10);
        }
    }

    /// <summary>
    /// One side's session. The target (a new 4 MiB qcow2) sits on a 4 MiB tmpfs that a filler file fills up to its last
    /// 256 KiB, so the copy of the source's 2 MiB of data runs out of space partway.
    /// </summary>
    private static async Task<Run> RunAsync(TempDirectory dir, bool qsd, string command, string policy)
    {
        string side = qsd ? "qemu-storage-daemon" : "blk serve";
        string fs = dir.File(qsd ? "fs-qsd" : "fs-ours");
        Directory.CreateDirectory(fs);
        const string setup = "qemu-img create -q -f qcow2 \"$0/target.qcow2\" 4M && " +
            "{ dd if=/dev/zero of=\"$0/filler\" bs=64k status=none 2>/dev/null; truncate -s -256K \"$0/filler\"; }";
        string[] arguments =
        [
            "--blockdev", new JsonObject { ["driver"] = "file", ["node-name"] = "sf", ["filename"] = dir.File("src.qcow2") }.ToJsonString(),
            "--blockdev", """{"driver": "qcow2", "node-name": "s", "file": "sf"}""",
            "--blockdev", new JsonObject { ["driver"] = "file", ["node-name"] = "tf", ["filename"] = $"{fs}/target.qcow2" }.ToJsonString(),
            "--blockdev", """{"driver": "qcow2", "node-name": "t", "file": "tf"}""",
        ];
        var replies = new List<JsonObject>();
        List<JsonObject> events;
        string copy = dir.File(qsd ? "target.qsd.qcow2" : "target.ours.qcow2");
        await using (var daemon = qsd
            ? await TmpfsNamespace.StartQsdAsync(fs, "4M", setup, arguments)
            : await TmpfsNamespace.StartBlkServeAsync(fs, "4M", setup, arguments))
        {
            async Task Do(string name, JsonObject? args = null)
            {
                var reply = await daemon.ExecuteAsync(name, args);
                reply.Remove("id");
                if (name == "query-block-jobs" && reply["return"] is JsonArray jobs)
                {
                    // QEMU 2.12's job state members, which the seed's BlockJobInfo lacks.
                    foreach (var job in jobs.OfType<JsonObject>())
                    {
                        job.Remove("status");
                        job.Remove("auto-finalize");
                        job.Remove("auto-dismiss");
                    }
                }
                replies.Add(reply);
            }

            var start = new JsonObject
            {
                ["device"] = "s", ["job-id"] = "j", ["target"] = "t", ["sync"] = "full", ["on-target-error"] = policy,
            };
            // One copy in flight at a time, so that the copy that meets the full disk is the only one that fails.
            if (command == "blockdev-mirror")
                start["buf-size"] = 65536;
            await Do(command, start);
            await WaitEventsAsync(daemon, side, "BLOCK_JOB_ERROR", 1);
            if (policy != "report")
            {
                await PollAsync(daemon, "query-block-jobs", Idle);
                await Do("query-block-jobs");
                // Make room, then resume: the failed copy is retried and the job runs to its end.
                File.Delete(TmpfsNamespace.Inside(daemon, $"{fs}/filler"));
                await Do("block-job-resume", J("""{"device": "j"}"""));
                if (command == "blockdev-mirror")
                {
                    await WaitEventsAsync(daemon, side, "BLOCK_JOB_READY", 1);
                    await PollAsync(daemon, "query-block-jobs", ReadyInSync);
                    await Do("query-block-jobs");
                    await Do("block-job-complete", J("""{"device": "j"}"""));
                }
            }
            await WaitEventsAsync(daemon, side, "BLOCK_JOB_COMPLETED", 1);
            await Do("query-block-jobs");
            // The graph stays usable: the target leaves it cleanly (its file closed, so the copy below is whole).
            await Do("blockdev-del", J("""{"node-name": "t"}"""));
            await Do("blockdev-del", J("""{"node-name": "tf"}"""));
            await Do("blockdev-del", J("""{"node-name": "s"}"""));
            await Do("blockdev-del", J("""{"node-name": "sf"}"""));
            File.Copy(TmpfsNamespace.Inside(daemon, $"{fs}/target.qcow2"), copy, overwrite: true);
            Assert.True(await daemon.QuitAsync(), daemon.Stderr);
            events = [.. daemon.Qmp.TakeEvents()
                .Where(e => ((string)e["event"]!).StartsWith("BLOCK_JOB_", StringComparison.Ordinal))
                .Select(e =>
                {
                    var c = e.DeepClone().AsObject();
                    c.Remove("timestamp");
                    return c;
                })];
        }
        return new Run(replies, events, copy);
    }

    private static string Text(IEnumerable<JsonObject> list) => string.Join("\n", list.Select(o => o.ToJsonString()));

    [UserNamespaceTheory]
    [InlineData("blockdev-mirror", "report")]
    [InlineData("blockdev-mirror", "stop")]
    [InlineData("blockdev-mirror", "enospc")]
    [InlineData("blockdev-backup", "report")]
    [InlineData("blockdev-backup", "stop")]
    [InlineData("blockdev-backup", "enospc")]
    public async Task A_full_target_file_system_gives_qemu_storage_daemons_events_io_status_and_target(string command, string policy)
    {
        using var dir = new TempDirectory();
        QemuImg.Create("qcow2", dir.File("src.qcow2"), "4M");
        QemuIo.RunChecked(dir.File("src.qcow2"), "qcow2", "write -P 0x22 0 2M");
        File.Copy(dir.File("src.qcow2"), dir.File("src.orig.qcow2"));

        var theirs = await RunAsync(dir, qsd: true, command, policy);
        var ours = await RunAsync(dir, qsd: false, command, policy);

        // QSD's own outcome is what the test states: report fails the job with ENOSPC, stop and enospc pause it with
        // io-status nospace.
        var completed = theirs.Events.Last();
        Assert.Equal("BLOCK_JOB_COMPLETED", (string?)completed["event"]);
        Assert.Equal(policy == "report" ? "No space left on device" : null, (string?)completed["data"]!["error"]);
        if (policy != "report")
            Assert.Equal("nospace", (string?)theirs.Replies[1]["return"]![0]!["io-status"]);

        Assert.True(Text(theirs.Replies) == Text(ours.Replies), $"replies differ\n  QSD:\n{Text(theirs.Replies)}\n  ours:\n{Text(ours.Replies)}");
        Assert.True(Text(theirs.Events) == Text(ours.Events), $"events differ\n  QSD:\n{Text(theirs.Events)}\n  ours:\n{Text(ours.Events)}");

        // The source is untouched and clean.
        Assert.Equal(0, QemuImg.Compare(dir.File("src.orig.qcow2"), dir.File("src.qcow2"), "qcow2", "qcow2"));
        Assert.Equal(0, QemuImg.Check(dir.File("src.qcow2"), "qcow2").ExitCode);
        foreach (var target in new[] { theirs.Target, ours.Target })
        {
            var check = QemuImg.Check(target, "qcow2");
            Assert.True(check.ExitCode == 0, $"{target}: {check.Stdout}{check.Stderr}");
            if (policy != "report")
                Assert.Equal(0, QemuImg.Compare(dir.File("src.qcow2"), target, "qcow2", "qcow2"));
        }
    }
}
