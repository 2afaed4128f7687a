using System.Text.Json.Nodes;
using Block.Graph;
using Block.TestSupport;

namespace Block.Qcow2.Tests.Graph;

/// <summary>
/// External snapshots and backing file changes side by side with qemu-storage-daemon 7.2. QSD's guest is an NBD export
/// of the top node written by qemu-io; ours is a backend on the same node written by the test. The same writes, before
/// and after the snapshots, must give byte-identical overlay files, and the same replies.
/// </summary>
public sealed class SnapshotOracleTests
{
    private static JsonObject J(string json) => JsonNode.Parse(json)!.AsObject();

    /// <summary>base.qcow2 (node bq, read-only) under top.qcow2 (node q0), a device on q0, and a null node n0.</summary>
    private static QsdScenario ChainWithDevice(TempDirectory dir, Func<BlockBackend?> backend, Action<BlockBackend> setBackend)
    {
        QemuImg.Create("qcow2", dir.File("base.qcow2"), "64M");
        QemuIo.RunChecked(dir.File("base.qcow2"), "qcow2", "write -P 0x11 0 4M");
        QemuImg.Run("create", "-q", "-f", "qcow2", "-b", dir.File("base.qcow2"), "-F", "qcow2", dir.File("top.qcow2")).EnsureSuccess("qemu-img create");
        QemuIo.RunChecked(dir.File("top.qcow2"), "qcow2", "write -P 0x22 1M 1M");
        string socket = dir.File("nbd.sock");
        return new QsdScenario(dir)
            .Blockdev($$"""{"driver": "file", "node-name": "bf", "filename": "{{dir.File("base.qcow2")}}", "read-only": true}""")
            .Blockdev("""{"driver": "qcow2", "node-name": "bq", "file": "bf", "read-only": true}""")
            .Blockdev($$"""{"driver": "file", "node-name": "f0", "filename": "{{dir.File("top.qcow2")}}"}""")
            .Blockdev("""{"driver": "qcow2", "node-name": "q0", "file": "f0", "backing": "bq"}""")
            .Blockdev("""{"driver": "null-co", "node-name": "n0"}""")
            .Device(["--nbd-server", $"addr.type=unix,addr.path={socket}", "--export", "type=nbd,id=e0,node-name=q0,name=disk,writable=on"],
                graph =>
                {
                    setBackend(graph.CreateBackend(graph.FindNode("q0")!));
                    return Task.CompletedTask;
                })
            .File("base.qcow2").File("top.qcow2");
    }

    /// <summary>The same guest write on both sides: qemu-io over QSD's export, the backend on ours.</summary>
    private static QsdScenario Write(QsdScenario s, TempDirectory dir, Func<BlockBackend?> backend, byte pattern, long offset, int length) =>
        s.Do(
            () =>
            {
                var r = ProcessRunner.Run(QemuIo.Path, ["-f", "raw", "-c", $"write -P 0x{pattern:x2} {offset} {length}",
                    $"nbd+unix:///disk?socket={dir.File("nbd.sock")}"]).EnsureSuccess("qemu-io over NBD");
                Assert.DoesNotContain("failed", r.Stdout, StringComparison.Ordinal);
                return Task.CompletedTask;
            },
            async _ => await backend()!.WriteAsync(offset, Patterns.Fill(length, pattern)));

    private static void AssertSameBytes(QsdScenario s, TempDirectory dir, string name)
    {
        var theirs = File.ReadAllBytes(s.QsdFile(name));
        var ours = File.ReadAllBytes(dir.File(name));
        int at = Enumerable.Range(0, Math.Min(theirs.Length, ours.Length)).FirstOrDefault(i => theirs[i] != ours[i], -1);
        Assert.True(at < 0 && theirs.Length == ours.Length,
            $"{name}: QSD's has {theirs.Length} bytes, ours {ours.Length}; first difference at {at}");
    }

    [Fact]
    public async Task Blockdev_snapshot_sync_answers_and_writes_overlays_byte_for_byte_as_qemu_storage_daemon_does()
    {
        using var dir = new TempDirectory();
        BlockBackend? backend = null;
        var s = ChainWithDevice(dir, () => backend, b => backend = b);
        string S(string name) => dir.File(name);
        s.File("s1.qcow2").File("s2.qcow2").File("bad.qcow2");
        Write(s, dir, () => backend, 0xaa, 0, 65536);
        Write(s, dir, () => backend, 0xbb, 2 << 20, 65536);
        s.Command("blockdev-snapshot-sync", J($$"""{"snapshot-file": "{{S("s1.qcow2")}}"}"""))
            .Command("blockdev-snapshot-sync", J($$"""{"node-name": "zz", "snapshot-file": "{{S("s1.qcow2")}}"}"""))
            .Command("blockdev-snapshot-sync", J($$"""{"device": "q0", "snapshot-file": "{{S("s1.qcow2")}}"}"""))
            .Command("blockdev-snapshot-sync", J($$"""{"node-name": "q0", "snapshot-file": "{{S("s1.qcow2")}}"}"""))
            .Command("blockdev-snapshot-sync", J($$"""{"node-name": "q0", "snapshot-file": "{{S("s1.qcow2")}}", "snapshot-node-name": "f0"}"""))
            .Command("blockdev-snapshot-sync", J($$"""{"node-name": "q0", "snapshot-file": "{{S("s1.qcow2")}}", "snapshot-node-name": ""}"""))
            .Command("blockdev-snapshot-sync", J($$"""{"node-name": "bq", "snapshot-file": "{{S("s1.qcow2")}}", "snapshot-node-name": "s1"}"""))
            .Command("blockdev-snapshot-sync", J($$"""{"node-name": "q0", "snapshot-file": "{{S("s1.qcow2")}}", "snapshot-node-name": "s1", "format": "nosuch"}"""))
            .Command("blockdev-snapshot-sync", J($$"""{"node-name": "q0", "snapshot-file": "{{S("s1.raw")}}", "snapshot-node-name": "s1", "format": "raw"}"""))
            .Command("blockdev-snapshot-sync", J($$"""{"node-name": "q0", "snapshot-file": "{{S("s1.qcow2")}}", "snapshot-node-name": "s1", "format": "file"}"""))
            .Command("blockdev-snapshot-sync", J($$"""{"node-name": "q0", "snapshot-file": "{{S("s0.qcow2")}}", "snapshot-node-name": "s1", "mode": "existing"}"""))
            .Command("blockdev-snapshot-sync", J("""{"node-name": "q0", "snapshot-file": "/nonexistent/s1.qcow2", "snapshot-node-name": "s1"}"""))
            .Command("blockdev-snapshot-sync", J($$"""{"node-name": "q0", "snapshot-file": "{{S("bad.qcow2")}}", "snapshot-node-name": "1x"}"""))
            .Command("blockdev-snapshot-sync", J($$"""{"node-name": "q0", "snapshot-file": "{{S("s1.qcow2")}}", "snapshot-node-name": "s1"}"""));
        Write(s, dir, () => backend, 0xcc, 32768, 65536);
        Write(s, dir, () => backend, 0xdd, 60 << 20, 65536);
        s.Command("blockdev-snapshot-sync", J($$"""{"node-name": "s1", "snapshot-file": "{{S("s2.qcow2")}}", "snapshot-node-name": "s2", "mode": "absolute-paths"}"""))
            .Command("blockdev-del", J("""{"node-name": "s1"}"""))
            .Command("blockdev-del", J("""{"node-name": "s2"}"""))
            .Command("blockdev-del", J("""{"node-name": "q0"}"""))
            .Command("block-dirty-bitmap-add", J("""{"node": "q0", "name": "b"}"""))
            .Command("block-dirty-bitmap-clear", J("""{"node": "q0", "name": "b"}"""))
            .Command("block_resize", J("""{"node-name": "q0", "size": 1048576}"""));
        Write(s, dir, () => backend, 0xee, (1 << 20) + 4096, 4096);
        await s.RunAsync(graph =>
        {
            var s2 = graph.FindNode("s2")!;
            Assert.Same(s2, backend!.Root);
            Assert.Equal(["s1", "q0", "bq"], Chain(s2).Skip(1).Select(n => n.NodeName));
            Assert.True(graph.FindNode("s1")!.ReadOnly);
            Assert.True(graph.FindNode("q0")!.ReadOnly);
            Assert.False(s2.ReadOnly);
            return Task.CompletedTask;
        });
        s.AssertSameReplies();

        AssertSameBytes(s, dir, "s1.qcow2");
        AssertSameBytes(s, dir, "s2.qcow2");
        AssertSameBytes(s, dir, "top.qcow2");
        AssertSameBytes(s, dir, "bad.qcow2");
        Qcow2Images.AssertClean(dir.File("s2.qcow2"));
        var info = QemuImg.Info(dir.File("s2.qcow2"), "qcow2");
        Assert.Equal(dir.File("s1.qcow2"), (string?)info["backing-filename"]);
        Assert.Equal("qcow2", (string?)info["backing-filename-format"]);
        Assert.Equal(64L << 20, (long)info["virtual-size"]!);

        var expected = Patterns.Fill(64 << 20, 0);
        Patterns.Fill(4 << 20, 0x11).CopyTo(expected, 0);
        Patterns.Fill(1 << 20, 0x22).CopyTo(expected, 1 << 20);
        Patterns.Fill(65536, 0xaa).CopyTo(expected, 0);
        Patterns.Fill(65536, 0xbb).CopyTo(expected, 2 << 20);
        Patterns.Fill(65536, 0xcc).CopyTo(expected, 32768);
        Patterns.Fill(65536, 0xdd).CopyTo(expected, 60 << 20);
        Patterns.Fill(4096, 0xee).CopyTo(expected, (1 << 20) + 4096);
        Assert.Equal(expected, Qcow2Images.OracleRead(dir.File("s2.qcow2"), dir));
    }

    [Fact]
    public async Task Blockdev_snapshot_onto_an_added_overlay_answers_and_writes_as_qemu_storage_daemon_does()
    {
        using var dir = new TempDirectory();
        BlockBackend? backend = null;
        var s = ChainWithDevice(dir, () => backend, b => backend = b);
        QemuImg.Run("create", "-q", "-f", "qcow2", "-b", dir.File("top.qcow2"), "-F", "qcow2", dir.File("ov.qcow2")).EnsureSuccess("qemu-img create");
        QemuImg.Create("raw", dir.File("r.raw"), "1M");
        s.File("ov.qcow2")
            .Blockdev($$$"""{"driver": "qcow2", "node-name": "o1", "file": {"driver": "file", "filename": "{{{dir.File("ov.qcow2")}}}"}, "backing": null}""")
            .Blockdev($$$"""{"driver": "raw", "node-name": "rr", "file": {"driver": "file", "filename": "{{{dir.File("r.raw")}}}"}}""");
        Write(s, dir, () => backend, 0xaa, 0, 65536);
        s.Command("blockdev-snapshot", J("""{"node": "q0", "overlay": "zz"}"""))
            .Command("blockdev-snapshot", J("""{"node": "zz", "overlay": "o1"}"""))
            .Command("blockdev-snapshot", J("""{"node": "q0", "overlay": "q0"}"""))
            .Command("blockdev-snapshot", J("""{"node": "q0", "overlay": "f0"}"""))
            .Command("blockdev-snapshot", J("""{"node": "q0", "overlay": "n0"}"""))
            .Command("blockdev-snapshot", J("""{"node": "q0", "overlay": "rr"}"""))
            .Command("blockdev-snapshot", J("""{"node": "bq", "overlay": "o1"}"""))
            .Command("blockdev-snapshot", J("""{"node": "q0", "overlay": "o1"}"""))
            .Command("blockdev-snapshot", J("""{"node": "o1", "overlay": "q0"}"""));
        Write(s, dir, () => backend, 0xbb, 32768, 65536);
        s.Command("blockdev-del", J("""{"node-name": "o1"}"""))
            .Command("blockdev-del", J("""{"node-name": "q0"}"""));
        await s.RunAsync(graph =>
        {
            Assert.Same(graph.FindNode("o1"), backend!.Root);
            Assert.True(graph.FindNode("q0")!.ReadOnly);
            return Task.CompletedTask;
        });
        s.AssertSameReplies();
        AssertSameBytes(s, dir, "ov.qcow2");
        AssertSameBytes(s, dir, "top.qcow2");
        Qcow2Images.AssertClean(dir.File("ov.qcow2"));
    }

    [Fact]
    public async Task Change_backing_file_answers_and_rewrites_headers_byte_for_byte_as_qemu_storage_daemon_does()
    {
        using var dir = new TempDirectory();
        QemuImg.Create("raw", dir.File("base.raw"), "1M");
        QemuImg.Run("create", "-q", "-f", "qcow2", "-b", dir.File("base.raw"), "-F", "raw", dir.File("mid.qcow2")).EnsureSuccess("qemu-img create");
        QemuImg.Run("create", "-q", "-f", "qcow2", "-b", dir.File("mid.qcow2"), "-F", "qcow2", dir.File("top.qcow2")).EnsureSuccess("qemu-img create");
        QemuImg.Run("create", "-q", "-f", "qcow2", "-b", dir.File("base.raw"), "-F", "raw", dir.File("other.qcow2")).EnsureSuccess("qemu-img create");
        string longName = new('n', 1100);
        var s = new QsdScenario(dir)
            .Blockdev($$"""{"driver": "file", "node-name": "cbf", "filename": "{{dir.File("base.raw")}}", "read-only": true}""")
            .Blockdev("""{"driver": "raw", "node-name": "cb", "file": "cbf", "read-only": true}""")
            .Blockdev($$$"""{"driver": "qcow2", "node-name": "cm", "read-only": true, "file": {"driver": "file", "filename": "{{{dir.File("mid.qcow2")}}}"}, "backing": "cb"}""")
            .Blockdev($$"""{"driver": "file", "node-name": "f0", "filename": "{{dir.File("top.qcow2")}}"}""")
            .Blockdev("""{"driver": "qcow2", "node-name": "q0", "file": "f0", "backing": "cm"}""")
            .Blockdev($$"""{"driver": "file", "node-name": "of", "filename": "{{dir.File("other.qcow2")}}"}""")
            .Blockdev("""{"driver": "qcow2", "node-name": "oq", "file": "of"}""")
            .Blockdev("""{"driver": "null-co", "node-name": "n0"}""")
            .File("mid.qcow2").File("top.qcow2").File("other.qcow2")
            .Command("change-backing-file", J("""{"device": "zz", "image-node-name": "q0", "backing-file": "x"}"""))
            .Command("change-backing-file", J("""{"device": "cm", "image-node-name": "q0", "backing-file": "x"}"""))
            .Command("change-backing-file", J("""{"device": "f0", "image-node-name": "q0", "backing-file": "x"}"""))
            .Command("change-backing-file", J("""{"device": "q0", "image-node-name": "zz", "backing-file": "x"}"""))
            .Command("change-backing-file", J("""{"device": "q0", "image-node-name": "cb", "backing-file": "x"}"""))
            .Command("change-backing-file", J("""{"device": "q0", "image-node-name": "n0", "backing-file": "x"}"""))
            .Command("change-backing-file", J("""{"device": "n0", "image-node-name": "q0", "backing-file": "x"}"""))
            .Command("change-backing-file", J("""{"device": "q0", "image-node-name": "f0", "backing-file": "x"}"""))
            .Command("change-backing-file", J("""{"device": "q0", "image-node-name": "oq", "backing-file": "x"}"""))
            .Command("change-backing-file", J($$"""{"device": "q0", "image-node-name": "q0", "backing-file": "{{longName}}"}"""))
            .Command("change-backing-file", J("""{"device": "q0", "image-node-name": "cm", "backing-file": "renamed-base.raw"}"""))
            .Command("change-backing-file", J("""{"device": "q0", "image-node-name": "q0", "backing-file": "relative/mid.qcow2"}"""))
            .Command("change-backing-file", J("""{"device": "oq", "image-node-name": "oq", "backing-file": ""}"""));
        await s.RunAsync(graph =>
        {
            Assert.True(graph.FindNode("cm")!.ReadOnly);
            Assert.Same(graph.FindNode("cb"), graph.FindNode("cm")!.Backing!.Node);
            Assert.Equal("renamed-base.raw", graph.FindNode("cm")!.Impl.BackingFileName);
            return Task.CompletedTask;
        });
        s.AssertSameReplies();
        AssertSameBytes(s, dir, "mid.qcow2");
        AssertSameBytes(s, dir, "top.qcow2");
        AssertSameBytes(s, dir, "other.qcow2");
    }

    private static IEnumerable<BlockNode> Chain(BlockNode top)
    {
        for (var n = top; n != null; n = n.Backing?.Node)
            yield return n;
    }
}
