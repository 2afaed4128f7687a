using System.Text.Json.Nodes;
using Block.TestSupport;

namespace Block.Qcow2.Tests.Graph;

/// <summary>
/// The graph commands side by side with qemu-storage-daemon 7.2: the same nodes, the same session, the same replies
/// (error classes and texts included), and images that qemu-img finds equal and clean.
/// </summary>
public sealed class GraphCommandOracleTests
{
    private static JsonObject J(string json) => JsonNode.Parse(json)!.AsObject();

    private static void Zero(string path, long length)
    {
        using var f = System.IO.File.Create(path);
        f.SetLength(length);
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

    /// <summary>base.qcow2 (64 MiB, read-only node bq) under top.qcow2 (node q0), with some data in each.</summary>
    private static QsdScenario Chain(TempDirectory dir)
    {
        QemuImg.Create("qcow2", dir.File("base.qcow2"), "64M");
        QemuIo.RunChecked(dir.File("base.qcow2"), "qcow2", "write -P 0x11 0 1M");
        QemuImg.Run("create", "-q", "-f", "qcow2", "-b", dir.File("base.qcow2"), "-F", "qcow2", dir.File("top.qcow2")).EnsureSuccess("qemu-img create");
        QemuIo.RunChecked(dir.File("top.qcow2"), "qcow2", "write -P 0x22 512k 1M");
        return new QsdScenario(dir)
            .Blockdev(File("bf", dir.File("base.qcow2"), readOnly: true))
            .Blockdev(Qcow2("bq", "bf", readOnly: true))
            .Blockdev(File("f0", dir.File("top.qcow2")))
            .Blockdev(Qcow2("q0", "f0", backing: "bq"))
            .Blockdev("""{"driver": "null-co", "node-name": "n0"}""")
            .File("base.qcow2").File("top.qcow2");
    }

    private static void AssertSameImage(QsdScenario s, TempDirectory dir, string name, string format = "qcow2")
    {
        string ours = dir.File(name), theirs = s.QsdFile(name);
        Assert.Equal(0, QemuImg.Compare(theirs, ours, format, format));
        if (format == "qcow2")
        {
            Qcow2Images.AssertClean(ours);
            Qcow2Images.AssertClean(theirs);
        }
        Assert.Equal(QemuImg.Info(theirs, format)["virtual-size"]!.GetValue<long>(), QemuImg.Info(ours, format)["virtual-size"]!.GetValue<long>());
    }

    [Fact]
    public async Task Block_resize_answers_and_resizes_as_qemu_storage_daemon_does()
    {
        using var dir = new TempDirectory();
        Zero(dir.File("r.raw"), 1 << 20);
        Zero(dir.File("grow.raw"), 1 << 20);
        var s = Chain(dir)
            .Blockdev(File("r0", dir.File("r.raw"), readOnly: true))
            .Blockdev(File("gf", dir.File("grow.raw")))
            .Blockdev("""{"driver": "raw", "node-name": "gr", "file": "gf"}""")
            .File("grow.raw")
            .Command("block_resize", J("""{"node-name": "zz", "size": 512}"""))
            .Command("block_resize", J("""{"device": "zz", "size": 512}"""))
            .Command("block_resize", J("""{"device": "zz", "node-name": "yy", "size": 512}"""))
            .Command("block_resize", J("""{"size": 512}"""))
            .Command("block_resize", J("""{"device": "q0", "size": 512}"""))
            .Command("block_resize", J("""{"node-name": "zz", "size": -1}"""))
            .Command("block_resize", J("""{"node-name": "q0", "size": -1}"""))
            .Command("block_resize", J("""{"node-name": "r0", "size": 4096}"""))
            .Command("block_resize", J("""{"node-name": "n0", "size": 4096}"""))
            .Command("block_resize", J("""{"node-name": "f0", "size": 512}"""))
            .Command("block_resize", J("""{"node-name": "bq", "size": 1048576}"""))
            .Command("block_resize", J("""{"device": "zz", "node-name": "bq", "size": 1048576}"""))
            .Command("block_resize", J("""{"node-name": "bf", "size": 1048576}"""))
            .Command("block_resize", J("""{"node-name": "q0", "size": 1000}"""))
            .Command("block_resize", J("""{"node-name": "q0", "size": 9223372036854775807}"""))
            .Command("block_resize", J("""{"node-name": "q0", "size": 134217728}"""))
            .Command("block_resize", J("""{"device": "", "node-name": "q0", "size": 100663296}"""))
            .Command("block_resize", J("""{"node-name": "gr", "size": 3145728}"""))
            .Command("block_resize", J("""{"node-name": "gf", "size": 4194304}"""));
        await s.RunAsync();
        s.AssertSameReplies();
        AssertSameImage(s, dir, "top.qcow2");
        AssertSameImage(s, dir, "base.qcow2");
        Assert.Equal(new FileInfo(s.QsdFile("grow.raw")).Length, new FileInfo(dir.File("grow.raw")).Length);
    }

    [Fact]
    public async Task Write_threshold_answers_as_qemu_storage_daemon_does()
    {
        using var dir = new TempDirectory();
        var s = Chain(dir)
            .Command("block-set-write-threshold", J("""{"node-name": "zz", "write-threshold": 5}"""))
            .Command("block-set-write-threshold", J("""{"node-name": "q0", "write-threshold": 18446744073709551615}"""))
            .Command("block-set-write-threshold", J("""{"node-name": "f0", "write-threshold": 65536}"""))
            .Command("block-set-write-threshold", J("""{"node-name": "f0", "write-threshold": 0}"""));
        await s.RunAsync(graph =>
        {
            Assert.Equal(-1, graph.FindNode("q0")!.WriteThreshold);
            Assert.Equal(-1, graph.FindNode("q0")!.GetDeviceInfo().WriteThreshold);
            return Task.CompletedTask;
        });
        s.AssertSameReplies();
    }

    [Fact]
    public async Task Dirty_bitmap_commands_answer_as_qemu_storage_daemon_does_and_persistent_bitmaps_land_in_the_image()
    {
        using var dir = new TempDirectory();
        QemuImg.Create("qcow2", dir.File("v2.qcow2"), "1M", "compat=0.10");
        Zero(dir.File("r.raw"), 1 << 20);
        var s = Chain(dir)
            .Blockdev(File("r0", dir.File("r.raw"), readOnly: true))
            .Blockdev(File("v2f", dir.File("v2.qcow2")))
            .Blockdev(Qcow2("v2", "v2f"))
            .Command("block-dirty-bitmap-add", J("""{"node": "zz", "name": "b"}"""))
            .Command("block-dirty-bitmap-add", J("""{"node": "q0", "name": ""}"""))
            .Command("block-dirty-bitmap-add", J("""{"node": "zz", "name": ""}"""))
            .Command("block-dirty-bitmap-add", J("""{"node": "q0", "name": "b", "granularity": 1000}"""))
            .Command("block-dirty-bitmap-add", J("""{"node": "q0", "name": "b", "granularity": 256}"""))
            .Command("block-dirty-bitmap-add", J("""{"node": "q0", "name": "huge", "granularity": 2147483648}"""))
            .Command("block-dirty-bitmap-add", J("""{"node": "q0", "name": "b"}"""))
            .Command("block-dirty-bitmap-add", J("""{"node": "q0", "name": "b"}"""))
            .Command("block-dirty-bitmap-add", J("""{"node": "n0", "name": "p", "persistent": true}"""))
            .Command("block-dirty-bitmap-add", J("""{"node": "v2", "name": "p", "persistent": true}"""))
            .Command("block-dirty-bitmap-add", J("""{"node": "r0", "name": "p", "persistent": true}"""))
            .Command("block-dirty-bitmap-add", J("""{"node": "r0", "name": "p"}"""))
            .Command("block-dirty-bitmap-add", J("""{"node": "bq", "name": "p", "persistent": true}"""))
            .Command("block-dirty-bitmap-add", J("""{"node": "q0", "name": "pd", "persistent": true, "disabled": true, "granularity": 65536}"""))
            .Command("block-dirty-bitmap-add", J("""{"node": "q0", "name": "pe", "persistent": true, "granularity": 131072}"""))
            .Command("block-dirty-bitmap-add", J("""{"node": "q0", "name": "gone", "persistent": true}"""))
            .Command("block-dirty-bitmap-add", J("""{"node": "q0", "name": "pd", "persistent": true}"""))
            .Command("block-dirty-bitmap-remove", J("""{"node": "zz", "name": "b"}"""))
            .Command("block-dirty-bitmap-remove", J("""{"node": "q0", "name": "zz"}"""))
            .Command("block-dirty-bitmap-remove", J("""{"node": "q0", "name": ""}"""))
            .Command("block-dirty-bitmap-clear", J("""{"node": "zz", "name": "b"}"""))
            .Command("block-dirty-bitmap-clear", J("""{"node": "q0", "name": "zz"}"""))
            .Command("block-dirty-bitmap-clear", J("""{"node": "q0", "name": "pd"}"""))
            .Command("block-dirty-bitmap-clear", J("""{"node": "q0", "name": "b"}"""))
            .Command("block-dirty-bitmap-remove", J("""{"node": "q0", "name": "b"}"""))
            .Command("block-dirty-bitmap-remove", J("""{"node": "q0", "name": "gone"}"""))
            .Command("block-dirty-bitmap-remove", J("""{"node": "r0", "name": "p"}"""))
            .Command("block-dirty-bitmap-clear", J("""{"node": "r0", "name": "p"}"""));
        await s.RunAsync();
        s.AssertSameReplies();

        var theirs = QemuImg.Info(s.QsdFile("top.qcow2"), "qcow2")["format-specific"]!["data"]!["bitmaps"]!;
        var ours = QemuImg.Info(dir.File("top.qcow2"), "qcow2")["format-specific"]!["data"]!["bitmaps"]!;
        Assert.True(JsonNode.DeepEquals(theirs, ours), $"QSD: {theirs.ToJsonString()}\nours: {ours.ToJsonString()}");
        Assert.Equal(2, ours.AsArray().Count);
        Qcow2Images.AssertClean(dir.File("top.qcow2"));
        Assert.Equal(0, QemuImg.Compare(s.QsdFile("top.qcow2"), dir.File("top.qcow2"), "qcow2", "qcow2"));
    }

    [Fact]
    public async Task Blockdev_add_and_del_answer_as_qemu_storage_daemon_does()
    {
        using var dir = new TempDirectory();
        Zero(dir.File("r.raw"), 1 << 20);
        string r = dir.File("r.raw");
        var s = Chain(dir)
            .Command("blockdev-add", J($$"""{"driver": "file", "filename": "{{r}}"}"""))
            .Command("blockdev-add", J($$"""{"driver": "file", "node-name": "f0", "filename": "{{r}}"}"""))
            .Command("blockdev-add", J($$"""{"driver": "file", "node-name": "1bad", "filename": "{{r}}"}"""))
            .Command("blockdev-add", J($$"""{"driver": "file", "node-name": "a234567890123456789012345678901x", "filename": "{{r}}"}"""))
            .Command("blockdev-add", J($$"""{"driver": "file", "node-name": "r1", "filename": "{{r}}", "id": "x"}"""))
            .Command("blockdev-add", J($$$"""{"driver": "raw", "node-name": "r2", "file": {"driver": "file", "filename": "{{{r}}}", "node-name": "f0"}}"""))
            .Command("blockdev-add", J("""{"driver": "raw", "node-name": "r3", "file": "nosuch"}"""))
            .Command("blockdev-add", J("""{"driver": "file", "node-name": "r4", "filename": "/nonexistent/x"}"""))
            .Command("blockdev-add", J($$"""{"driver": "file", "node-name": "r5", "filename": "{{r}}"}"""))
            .Command("blockdev-add", J("""{"driver": "raw", "node-name": "r6", "file": "r5"}"""))
            .Command("blockdev-add", J($$$"""{"driver": "raw", "node-name": "r7", "file": {"driver": "file", "filename": "{{{r}}}", "node-name": "f7"}}"""))
            .Command("blockdev-del", J("""{"node-name": "nosuch"}"""))
            .Command("blockdev-del", J("""{"node-name": "r5"}"""))
            .Command("blockdev-del", J("""{"node-name": "f7"}"""))
            .Command("blockdev-del", J("""{"node-name": "bq"}"""))
            .Command("blockdev-del", J("""{"node-name": "bf"}"""))
            .Command("blockdev-del", J("""{"node-name": "r6"}"""))
            .Command("blockdev-del", J("""{"node-name": "r5"}"""))
            .Command("blockdev-del", J("""{"node-name": "r7"}"""))
            .Command("blockdev-del", J("""{"node-name": "f7"}"""))
            .Command("blockdev-del", J("""{"node-name": "q0"}"""))
            .Command("blockdev-del", J("""{"node-name": "bq"}"""));
        await s.RunAsync(graph =>
        {
            Assert.Null(graph.FindNode("q0"));
            Assert.Null(graph.FindNode("bq"));
            Assert.NotNull(graph.FindNode("f0"));
            return Task.CompletedTask;
        });
        s.AssertSameReplies();
    }

    [Fact]
    public async Task X_blockdev_change_refuses_as_qemu_storage_daemon_does_until_a_driver_takes_children()
    {
        using var dir = new TempDirectory();
        var s = Chain(dir)
            .Command("x-blockdev-change", J("""{"parent": "zz"}"""))
            .Command("x-blockdev-change", J("""{"parent": "q0"}"""))
            .Command("x-blockdev-change", J("""{"parent": "q0", "child": "file", "node": "n0"}"""))
            .Command("x-blockdev-change", J("""{"parent": "q0", "child": "nochild"}"""))
            .Command("x-blockdev-change", J("""{"parent": "q0", "child": "file"}"""))
            .Command("x-blockdev-change", J("""{"parent": "q0", "child": "backing"}"""))
            .Command("x-blockdev-change", J("""{"parent": "q0", "node": "zz"}"""))
            .Command("x-blockdev-change", J("""{"parent": "q0", "node": "n0"}"""))
            .Command("x-blockdev-change", J("""{"parent": "q0", "node": "f0"}"""))
            .Command("x-blockdev-change", J("""{"parent": "zz", "child": "x", "node": "y"}"""));
        await s.RunAsync();
        s.AssertSameReplies();
    }
}
