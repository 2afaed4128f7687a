using System.Text.Json.Nodes;
using Block.Cli.Tests.Nbd;
using Block.TestSupport;

namespace Block.Cli.Tests.Serve;

/// <summary>
/// Dirty bitmaps exported as <c>qemu:dirty-bitmap:NAME</c> metadata contexts by <c>blk serve</c>, side by side with
/// qemu-storage-daemon 7.2, read with nbdinfo (a client we did not write) as a backup tool reads them.
/// </summary>
public sealed class NbdBitmapExportTests
{
    private static string Maps(string socket, string uri, params string[] contexts)
    {
        string text = NbdInfo.Run(socket, "--json", uri).Replace(socket, "SOCKET") + NbdInfo.Run(socket, "--map", uri);
        foreach (string context in contexts)
            text += NbdInfo.Run(socket, $"--map=qemu:dirty-bitmap:{context}", uri);
        return text;
    }

    [Fact]
    public async Task Persistent_bitmaps_named_by_export_bitmaps_map_as_qemu_storage_daemon_maps_them()
    {
        using var dir = new TempDirectory();
        string image = dir.File("disk.qcow2");
        QemuImg.Create("qcow2", image, "64M");
        Assert.Equal(0, QemuImg.Run("bitmap", "--add", "-g", "65536", image, "b0").ExitCode);
        Assert.Equal(0, QemuImg.Run("bitmap", "--add", "--disable", image, "b1").ExitCode);
        QemuIo.RunChecked(image, "qcow2", "write -q -P 1 512k 64k", "write -q 10M 100k", "write -q -z 20M 4k");
        string[] CommandLine(string socket) =>
        [
            "--blockdev", $"driver=file,node-name=file0,filename={image}",
            "--blockdev", "driver=qcow2,node-name=fmt0,file=file0",
            "--nbd-server", $"addr.type=unix,addr.path={socket}",
            "--export", "type=nbd,id=exp0,node-name=fmt0,name=disk,writable=on,bitmaps.0=b0,bitmaps.1=b1",
        ];
        string ours, theirs;
        string oursSocket = dir.File("ours.sock"), theirsSocket = dir.File("theirs.sock");
        await using (var blk = await BlkServe.StartAsync(CommandLine(oursSocket)))
            ours = Maps(oursSocket, QemuNbd.Uri(oursSocket, "disk"), "b0", "b1");
        await using (var qsd = await QemuStorageDaemon.StartAsync(CommandLine(theirsSocket)))
            theirs = Maps(theirsSocket, QemuNbd.Uri(theirsSocket, "disk"), "b0", "b1");
        Assert.Equal(theirs, ours);
        Assert.Contains("dirty", ours, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Nbd_server_add_with_a_bitmap_answers_and_maps_as_qemu_storage_daemon_does()
    {
        using var dir = new TempDirectory();
        string image = dir.File("disk.qcow2");
        QemuImg.Create("qcow2", image, "16M");
        string[] blockdevs = ["--blockdev", $"driver=file,node-name=file0,filename={image}", "--blockdev", "driver=qcow2,node-name=fmt0,file=file0"];

        async Task<List<string>> SessionAsync(QemuStorageDaemon daemon, string socket)
        {
            var replies = new List<string>();
            async Task Run(string command, JsonObject? arguments = null)
            {
                var reply = await daemon.Qmp.ExecuteAsync(command, arguments);
                replies.Add($"{command}: {reply.ToJsonString().Replace(socket, "SOCKET", StringComparison.Ordinal)}");
            }
            await Run("block-dirty-bitmap-add", new JsonObject { ["node"] = "fmt0", ["name"] = "b0", ["granularity"] = 65536 });
            await Run("nbd-server-start", new JsonObject { ["addr"] = new JsonObject { ["type"] = "unix", ["data"] = new JsonObject { ["path"] = socket } } });
            await Run("nbd-server-add", new JsonObject { ["device"] = "fmt0", ["name"] = "disk", ["bitmap"] = "nosuch" });
            await Run("nbd-server-add", new JsonObject { ["device"] = "fmt0", ["name"] = "disk", ["bitmap"] = "b0" });
            await Run("nbd-server-add", new JsonObject { ["device"] = "fmt0", ["name"] = "disk", ["bitmap"] = "b0", ["writable"] = true });
            var io = ProcessRunner.Run(QemuIo.Path, ["-f", "raw", "-c", "write -q 1M 64k", "-c", "write -q 5M 200k", QemuNbd.Uri(socket, "disk")]);
            replies.Add($"qemu-io exit {io.ExitCode} {io.Stderr}");
            replies.Add(Maps(socket, QemuNbd.Uri(socket, "disk"), "b0"));
            await Run("block-dirty-bitmap-remove", new JsonObject { ["node"] = "fmt0", ["name"] = "b0" });
            await Run("nbd-server-remove", new JsonObject { ["name"] = "disk" });
            await Run("block-dirty-bitmap-remove", new JsonObject { ["node"] = "fmt0", ["name"] = "b0" });
            return replies;
        }

        List<string> ours, theirs;
        await using (var blk = await BlkServe.StartAsync(blockdevs))
            ours = await SessionAsync(blk, dir.File("ours.sock"));
        await using (var qsd = await QemuStorageDaemon.StartAsync(blockdevs))
            theirs = await SessionAsync(qsd, dir.File("theirs.sock"));
        Assert.Equal(string.Join("\n", theirs), string.Join("\n", ours));
    }
}
