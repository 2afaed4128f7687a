using System.Text.Json.Nodes;
using Block.Graph;
using Block.TestSupport;

namespace Block.Qcow2.Tests.Graph;

/// <summary>
/// <c>drive-backup</c> and <c>blockdev-backup</c> side by side with qemu-storage-daemon 7.2: the same session gives the
/// same replies and <c>BLOCK_JOB_*</c> events, and targets qemu-img finds equal and clean.
/// </summary>
public sealed class BackupJobOracleTests
{
    private static JsonObject J(string json) => JsonNode.Parse(json)!.AsObject();

    internal static string FileNode(string name, string path) =>
        new JsonObject { ["driver"] = "file", ["node-name"] = name, ["filename"] = path }.ToJsonString();

    internal static string Qcow2Node(string name, string file, string? backing = null, bool readOnly = false)
    {
        var o = new JsonObject { ["driver"] = "qcow2", ["node-name"] = name, ["file"] = file, ["read-only"] = readOnly };
        o["backing"] = backing;
        return o.ToJsonString();
    }

    /// <summary>
    /// base.qcow2 (4 MiB, 0x11 in 0–1 MiB, node b) ← src.qcow2 (0x22 at 2 MiB, zeroes at 3 MiB, node s), targets
    /// t1…t3.qcow2 (4 MiB, no backing, nodes t1…t3), a raw target (node r) and a device on s (an NBD export on QSD's
    /// side) for guest writes.
    /// </summary>
    private static QsdScenario Setup(TempDirectory dir, Func<BlockBackend?> device, Action<BlockBackend> setDevice, params string[] extraTargets)
    {
        QemuImg.Create("qcow2", dir.File("base.qcow2"), "4M");
        QemuIo.RunChecked(dir.File("base.qcow2"), "qcow2", "write -P 0x11 0 1M");
        QemuImg.Run("create", "-q", "-f", "qcow2", "-b", dir.File("base.qcow2"), "-F", "qcow2", dir.File("src.qcow2")).EnsureSuccess("qemu-img create");
        QemuIo.RunChecked(dir.File("src.qcow2"), "qcow2", "write -P 0x22 2M 64k", "write -z 3M 64k");
        QemuImg.Create("raw", dir.File("r.raw"), "4M");
        string socket = dir.File("nbd.sock");
        var s = new QsdScenario(dir)
            .Blockdev(FileNode("bf", dir.File("base.qcow2")))
            .Blockdev(Qcow2Node("b", "bf", readOnly: true))
            .Blockdev(FileNode("sf", dir.File("src.qcow2")))
            .Blockdev(Qcow2Node("s", "sf", backing: "b"))
            .Blockdev(FileNode("rf", dir.File("r.raw")))
            .Blockdev("""{"driver": "raw", "node-name": "r", "file": "rf"}""")
            .Device(["--nbd-server", $"addr.type=unix,addr.path={socket}", "--export", "type=nbd,id=e0,node-name=s,name=disk,writable=on"],
                graph =>
                {
                    setDevice(graph.CreateBackend(graph.FindNode("s")!));
                    return Task.CompletedTask;
                })
            .File("src.qcow2").File("r.raw");
        foreach (var t in new[] { "t1", "t2", "t3" }.Concat(extraTargets))
        {
            QemuImg.Create("qcow2", dir.File(t + ".qcow2"), "4M");
            s.Blockdev(FileNode(t + "f", dir.File(t + ".qcow2"))).Blockdev(Qcow2Node(t, t + "f")).File(t + ".qcow2");
        }
        return s;
    }

    /// <summary>The same guest write on both sides: qemu-io over QSD's export, the device on ours.</summary>
    internal static QsdScenario Write(QsdScenario s, TempDirectory dir, Func<BlockBackend?> device, byte pattern, long offset, int length) =>
        s.Do(
            () =>
            {
                var r = ProcessRunner.Run(QemuIo.Path, ["-f", "raw", "-c", $"write -P 0x{pattern:x2} {offset} {length}",
                    $"nbd+unix:///disk?socket={dir.File("nbd.sock")}"]).EnsureSuccess("qemu-io over NBD");
                Assert.DoesNotContain("failed", r.Stdout, StringComparison.Ordinal);
                return Task.CompletedTask;
            },
            async _ => await device()!.WriteAsync(offset, Patterns.Fill(length, pattern)));

    /// <summary>The <c>BLOCK_JOB_*</c> events (QSD's export also sends BLOCK_EXPORT_DELETED when it quits).</summary>
    internal static void AssertSameJobEvents(QsdScenario s)
    {
        s.QsdEvents.RemoveAll(e => !((string)e["event"]!).StartsWith("BLOCK_JOB_", StringComparison.Ordinal));
        s.AssertSameEvents();
    }

    private static void AssertSameTarget(QsdScenario s, TempDirectory dir, string name)
    {
        Assert.Equal(0, QemuImg.Compare(s.QsdFile(name), dir.File(name), "qcow2", "qcow2"));
        Qcow2Images.AssertClean(dir.File(name));
    }

    [Fact]
    public async Task Blockdev_backup_refuses_bad_arguments_and_copies_full_top_and_none_as_qemu_storage_daemon_does()
    {
        using var dir = new TempDirectory();
        BlockBackend? device = null;
        var s = Setup(dir, () => device, d => device = d)
            .Command("blockdev-backup", J("""{"device": "s", "target": "t1", "sync": "full"}"""))
            .Command("blockdev-backup", J("""{"device": "zz", "job-id": "j", "target": "t1", "sync": "full"}"""))
            .Command("blockdev-backup", J("""{"device": "s", "job-id": "j", "target": "zz", "sync": "full"}"""))
            .Command("blockdev-backup", J("""{"device": "s", "job-id": "j", "target": "s", "sync": "full"}"""))
            .Command("blockdev-backup", J("""{"device": "s", "job-id": "j", "target": "t1", "sync": "incremental"}"""))
            .Command("blockdev-backup", J("""{"device": "s", "job-id": "j", "target": "t1", "sync": "incremental", "bitmap": "zz"}"""))
            .Command("blockdev-backup", J("""{"device": "s", "job-id": "j", "target": "r", "sync": "full", "compress": true}"""))
            .Command("blockdev-backup", J("""{"device": "s", "job-id": "1j", "target": "t1", "sync": "full"}"""))
            .Command("blockdev-backup", J("""{"device": "s", "job-id": "j", "target": "t1", "sync": "full", "speed": -1}"""))
            .Command("blockdev-backup", J("""{"device": "s", "job-id": "j", "target": "t1", "sync": "bogus"}"""))
            .Command("blockdev-backup", J("""{"device": "s", "job-id": "full", "target": "t1", "sync": "full"}"""))
            .WaitEvent("BLOCK_JOB_COMPLETED")
            .Command("blockdev-backup", J("""{"device": "s", "job-id": "top", "target": "t2", "sync": "top"}"""))
            .WaitEvent("BLOCK_JOB_COMPLETED")
            .Command("blockdev-backup", J("""{"device": "s", "job-id": "none", "target": "t3", "sync": "none"}"""))
            .Poll("query-block-jobs", jobs => jobs is JsonArray { Count: 1 } a && !(bool)a[0]!["busy"]!)
            .Command("query-block-jobs")
            .Command("blockdev-backup", J("""{"device": "b", "job-id": "j2", "target": "t3", "sync": "full"}"""));
        Write(s, dir, () => device, 0x55, 1 << 20, 65536);
        Write(s, dir, () => device, 0x66, 2 << 20, 4096);
        s.Command("block-job-cancel", J("""{"device": "none"}"""))
            .WaitEvent("BLOCK_JOB_CANCELLED")
            .Command("query-block-jobs");
        await s.RunAsync();
        s.AssertSameReplies();
        AssertSameJobEvents(s);
        AssertSameTarget(s, dir, "t1.qcow2");
        AssertSameTarget(s, dir, "t2.qcow2");
        AssertSameTarget(s, dir, "t3.qcow2");
        AssertSameTarget(s, dir, "src.qcow2");
    }

    [Fact]
    public async Task A_full_and_two_incremental_backups_restored_by_rebasing_equal_the_disk_at_the_last_backup_as_on_qemu_storage_daemon()
    {
        using var dir = new TempDirectory();
        BlockBackend? device = null;
        var s = Setup(dir, () => device, d => device = d);
        string full = dir.File("full.qcow2"), inc1 = dir.File("inc1.qcow2"), inc2 = dir.File("inc2.qcow2");
        QemuImg.Create("qcow2", inc2, "4M");
        s.File("full.qcow2").File("inc1.qcow2").File("inc2.qcow2");
        Write(s, dir, () => device, 0xa1, 0, 65536);
        s.Command("block-dirty-bitmap-add", J("""{"node": "s", "name": "bm"}"""))
            .Command("drive-backup", J($$"""{"device": "s", "job-id": "f", "target": "{{full}}", "sync": "full", "format": "qcow2"}"""))
            .WaitEvent("BLOCK_JOB_COMPLETED");
        Write(s, dir, () => device, 0xb2, 1 << 20, 65536);
        Write(s, dir, () => device, 0xb3, (3 << 20) + 512, 512);
        s.Command("drive-backup", J($$"""{"device": "s", "job-id": "i1", "target": "{{inc1}}", "sync": "incremental", "bitmap": "bm", "format": "qcow2"}"""))
            .WaitEvent("BLOCK_JOB_COMPLETED")
            .Command("query-block-jobs");
        Write(s, dir, () => device, 0xc4, 2 << 20, 131072);
        s.Command("blockdev-add", J($$"""{"driver": "qcow2", "node-name": "i2", "file": {"driver": "file", "filename": "{{inc2}}"}, "backing": null}"""))
            .Command("blockdev-backup", J("""{"device": "s", "job-id": "i2", "target": "i2", "sync": "incremental", "bitmap": "bm"}"""))
            .WaitEvent("BLOCK_JOB_COMPLETED")
            .Command("blockdev-del", J("""{"node-name": "i2"}"""))
            .Command("block-dirty-bitmap-clear", J("""{"node": "s", "name": "bm"}"""));
        await s.RunAsync();
        s.AssertSameReplies();
        AssertSameJobEvents(s);
        foreach (var name in new[] { "full.qcow2", "inc1.qcow2", "inc2.qcow2" })
            AssertSameTarget(s, dir, name);

        // Restore: inc2 over inc1 over full equals the disk as it is now (nothing was written after the last backup).
        QemuImg.Run("rebase", "-u", "-f", "qcow2", "-b", full, "-F", "qcow2", inc1).EnsureSuccess("qemu-img rebase");
        QemuImg.Run("rebase", "-u", "-f", "qcow2", "-b", inc1, "-F", "qcow2", inc2).EnsureSuccess("qemu-img rebase");
        Assert.Equal(0, QemuImg.Compare(inc2, dir.File("src.qcow2"), "qcow2", "qcow2"));
    }

    [Fact]
    public async Task Compressed_drive_backups_in_each_mode_write_what_qemu_storage_daemon_writes()
    {
        using var dir = new TempDirectory();
        BlockBackend? device = null;
        var s = Setup(dir, () => device, d => device = d);
        string c1 = dir.File("c1.qcow2"), c2 = dir.File("c2.qcow2"), c3 = dir.File("c3.qcow2");
        QemuImg.Create("qcow2", c3, "4M");
        s.File("c1.qcow2").File("c2.qcow2").File("c3.qcow2")
            .Command("drive-backup", J($$"""{"device": "s", "job-id": "c1", "target": "{{c1}}", "sync": "full", "compress": true}"""))
            .WaitEvent("BLOCK_JOB_COMPLETED")
            .Command("drive-backup", J($$"""{"device": "s", "job-id": "c2", "target": "{{c2}}", "sync": "top", "compress": true, "speed": 65536}"""))
            .WaitEvent("BLOCK_JOB_COMPLETED")
            .Command("drive-backup", J($$"""{"device": "s", "job-id": "c3", "target": "{{c3}}", "sync": "full", "mode": "existing", "format": "raw"}"""))
            .Command("drive-backup", J($$"""{"device": "s", "job-id": "c3", "target": "{{dir.File("nodir/x.qcow2")}}", "sync": "full"}"""))
            .Command("drive-backup", J($$"""{"device": "s", "job-id": "c3", "target": "{{c3}}", "sync": "full", "mode": "existing"}"""))
            .WaitEvent("BLOCK_JOB_COMPLETED")
            .Command("query-block-jobs");
        await s.RunAsync();
        s.AssertSameReplies();
        AssertSameJobEvents(s);
        foreach (var name in new[] { "c1.qcow2", "c2.qcow2", "c3.qcow2" })
            AssertSameTarget(s, dir, name);
        var info = QemuImg.Info(c2, "qcow2");
        Assert.Equal(dir.File("base.qcow2"), (string?)info["backing-filename"]);
        Assert.Equal("qcow2", (string?)info["backing-filename-format"]);
        var check = QemuImg.Check(c1, "qcow2").Stdout;
        Assert.Contains("compressed clusters", check, StringComparison.Ordinal);
        Assert.DoesNotContain(" 0.00% compressed clusters", check, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Drive_backup_sync_none_fleeces_into_a_new_file_and_into_an_existing_one_that_holds_data_as_qemu_storage_daemon_does()
    {
        using var dir = new TempDirectory();
        BlockBackend? device = null;
        var s = Setup(dir, () => device, d => device = d);
        string n1 = dir.File("n1.qcow2"), n2 = dir.File("n2.qcow2");
        QemuImg.Create("qcow2", n2, "4M");
        QemuIo.RunChecked(n2, "qcow2", "write -P 0x77 0 1M", "write -P 0x78 2M 128k");
        s.File("n1.qcow2").File("n2.qcow2")
            .Command("drive-backup", J($$"""{"device": "s", "job-id": "n1", "target": "{{n1}}", "sync": "none", "format": "qcow2"}"""))
            .Poll("query-block-jobs", jobs => jobs is JsonArray { Count: 1 } a && !(bool)a[0]!["busy"]!)
            .Command("query-block-jobs");
        Write(s, dir, () => device, 0x55, 1 << 20, 65536);
        Write(s, dir, () => device, 0x66, 2 << 20, 4096);
        s.Command("block-job-cancel", J("""{"device": "n1"}"""))
            .WaitEvent("BLOCK_JOB_CANCELLED")
            .Command("drive-backup", J($$"""{"device": "s", "job-id": "n2", "target": "{{n2}}", "sync": "none", "mode": "existing", "format": "qcow2"}"""))
            .Poll("query-block-jobs", jobs => jobs is JsonArray { Count: 1 } a && !(bool)a[0]!["busy"]!);
        Write(s, dir, () => device, 0x67, 0, 65536);
        Write(s, dir, () => device, 0x68, 2 << 20, 512);
        s.Command("block-job-cancel", J("""{"device": "n2"}"""))
            .WaitEvent("BLOCK_JOB_CANCELLED")
            .Command("query-block-jobs");
        await s.RunAsync();
        s.AssertSameReplies();
        AssertSameJobEvents(s);
        AssertSameTarget(s, dir, "n1.qcow2");
        AssertSameTarget(s, dir, "n2.qcow2");
        AssertSameTarget(s, dir, "src.qcow2");
    }

    [Theory]
    [InlineData("source", "report", 5)]
    [InlineData("source", "ignore", 5)]
    [InlineData("source", "stop", 5)]
    [InlineData("source", "enospc", 28)]
    [InlineData("source", "enospc", 5)]
    [InlineData("target", "report", 5)]
    [InlineData("target", "ignore", 5)]
    [InlineData("target", "stop", 28)]
    public async Task Backup_error_policies_act_as_qemu_storage_daemons_with_blkdebug_errors(string side, string policy, int errno)
    {
        using var dir = new TempDirectory();
        QemuImg.Create("qcow2", dir.File("src.qcow2"), "4M");
        QemuIo.RunChecked(dir.File("src.qcow2"), "qcow2", "write -P 0x22 0 4M");
        QemuImg.Create("qcow2", dir.File("t1.qcow2"), "4M");
        var map = JsonNode.Parse(QemuImg.MapJsonText(dir.File("src.qcow2"), "qcow2"))!.AsArray();
        long host = map.First(e => (bool)e!["data"]!)!["offset"]!.GetValue<long>() + (2 << 20);
        var rule = new JsonObject { ["event"] = side == "source" ? "read_aio" : "write_aio", ["errno"] = errno, ["once"] = true };
        if (side == "source")
            rule["sector"] = host / 512;
        string dbg = new JsonObject
        {
            ["driver"] = "blkdebug", ["node-name"] = "dbg", ["image"] = side == "source" ? "sf" : "tf",
            ["inject-error"] = new JsonArray(rule),
        }.ToJsonString();
        var s = new QsdScenario(dir)
            .Blockdev(FileNode("sf", dir.File("src.qcow2")))
            .Blockdev(FileNode("tf", dir.File("t1.qcow2")))
            .Blockdev(dbg)
            .Blockdev(Qcow2Node("s", side == "source" ? "dbg" : "sf"))
            .Blockdev(Qcow2Node("t", side == "source" ? "tf" : "dbg"))
            .File("src.qcow2").File("t1.qcow2")
            .Command("blockdev-backup", new JsonObject
            {
                ["device"] = "s", ["job-id"] = "j", ["target"] = "t", ["sync"] = "full",
                ["on-source-error"] = side == "source" ? policy : "report", ["on-target-error"] = side == "target" ? policy : "report",
            })
            .WaitEvent("BLOCK_JOB_ERROR");
        bool stops = policy == "stop" || (policy == "enospc" && errno == 28);
        if (stops)
        {
            s.Poll("query-block-jobs", jobs => jobs is JsonArray { Count: 1 } a && !(bool)a[0]!["busy"]!)
                .Command("block-job-cancel", J("""{"device": "j"}"""))
                .Command("block-job-resume", J("""{"device": "j"}"""));
        }
        s.WaitEvent("BLOCK_JOB_COMPLETED")
            .Command("query-block-jobs");
        await s.RunAsync();
        s.AssertSameReplies();
        bool fails = policy == "report" || (policy == "enospc" && errno != 28);
        if (fails)
        {
            // Where the copy stopped depends on how far each had got in parallel: compare type, device, len and error.
            foreach (var e in s.QsdEvents.Concat(s.OurEvents))
                (e["data"] as JsonObject)?.Remove("offset");
        }
        AssertSameJobEvents(s);
        if (!fails)
        {
            Assert.Equal(0, QemuImg.Compare(s.QsdFile("t1.qcow2"), dir.File("t1.qcow2"), "qcow2", "qcow2"));
            // Nothing corrupt. A failed data write into our qcow2 leaves the cluster it allocated leaked (exit 3, no harm
            // to data), where QEMU's frees it: a qcow2 driver difference, reported, not the job's.
            var ours = QemuImg.Check(dir.File("t1.qcow2"), "qcow2");
            Assert.True(ours.ExitCode is 0 or 3, ours.Stdout);
        }
    }
}
