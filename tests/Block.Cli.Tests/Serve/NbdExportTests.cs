using System.Text.Json.Nodes;
using Block.TestSupport;

namespace Block.Cli.Tests.Serve;

/// <summary>
/// <c>blk serve --nbd-server … --export type=nbd,…</c> and the QMP <c>nbd-server-*</c> commands, side by side with
/// qemu-storage-daemon 7.2 given the same command line, with QEMU's qemu-io as the NBD client.
/// </summary>
public sealed class NbdExportTests
{
    private static string[] CommandLine(string image, string socket, string writable) =>
    [
        "--blockdev", $"driver=file,node-name=file0,filename={image}",
        "--blockdev", "driver=qcow2,node-name=fmt0,file=file0",
        "--nbd-server", $"addr.type=unix,addr.path={socket}",
        "--export", $"type=nbd,id=exp0,node-name=fmt0,name=disk,writable={writable},description=served",
    ];

    private static string QemuIoOver(string socket, params string[] commands)
    {
        var args = new List<string> { "-f", "raw" };
        foreach (var c in commands)
            args.AddRange(["-c", c]);
        args.Add($"nbd+unix:///disk?socket={socket}");
        var r = ProcessRunner.Run(QemuIo.Path, args);
        return $"exit {r.ExitCode}\n{r.Stdout}\n{r.Stderr}".Replace(socket, "SOCKET", StringComparison.Ordinal);
    }

    [Fact]
    public async Task Qemu_io_through_blk_serve_export_matches_qemu_storage_daemon()
    {
        using var dir = new TempDirectory();
        string ours = dir.File("ours.qcow2"), theirs = dir.File("theirs.qcow2");
        QemuImg.Create("qcow2", ours, "16M");
        QemuIo.RunChecked(ours, "qcow2", "write -q -P 0x61 0 1M");
        File.Copy(ours, theirs);
        string[] session =
        [
            "read -q -P 0x61 0 1M", "write -q -P 0x62 512k 64k", "write -q -z 2M 1M", "discard -q 0 4k", "flush",
            "read -q -P 0x62 512k 64k", "read -q -P 0 2M 1M", "read -q 16M 512", "write -q 16M 512",
        ];
        string oursOut, theirsOut;
        await using (var blk = await BlkServe.StartAsync(CommandLine(ours, dir.File("ours.sock"), "on")))
            oursOut = QemuIoOver(dir.File("ours.sock"), session);
        await using (var qsd = await QemuStorageDaemon.StartAsync(CommandLine(theirs, dir.File("theirs.sock"), "on")))
            theirsOut = QemuIoOver(dir.File("theirs.sock"), session);
        Assert.Equal(theirsOut, oursOut);
        Assert.Equal(0, QemuImg.Compare(ours, theirs, "qcow2", "qcow2"));
    }

    [Fact]
    public async Task Nbd_qmp_commands_answer_as_qemu_storage_daemon_does()
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
            JsonObject Addr() => new() { ["addr"] = new JsonObject { ["type"] = "unix", ["data"] = new JsonObject { ["path"] = socket } } };
            await Run("nbd-server-add", new JsonObject { ["device"] = "fmt0" });
            await Run("nbd-server-stop");
            await Run("nbd-server-start", Addr());
            await Run("nbd-server-start", Addr());
            await Run("nbd-server-add", new JsonObject { ["device"] = "fmt0", ["name"] = "disk", ["writable"] = true });
            await Run("nbd-server-add", new JsonObject { ["device"] = "fmt0", ["name"] = "disk" });
            await Run("nbd-server-add", new JsonObject { ["device"] = "nosuch", ["name"] = "other" });
            replies.Add(QemuIoOver(socket, "write -q -P 0x70 0 64k", "read -q -P 0x70 0 64k"));
            await Run("nbd-server-remove", new JsonObject { ["name"] = "nosuch" });
            await Run("nbd-server-remove", new JsonObject { ["name"] = "disk" });
            replies.Add(QemuIoOver(socket, "read -q 0 512"));
            await Run("nbd-server-stop");
            await Run("nbd-server-stop");
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
