using System.Text.Json.Nodes;
using Block.TestSupport;

namespace Block.Cli.Tests.Serve;

/// <summary>
/// <c>block_passwd</c> over QMP, against the seed's text (QEMU 7.2 has no such command and its system emulator
/// refuses AES images): a <c>--drive</c> on a legacy AES qcow2 image without its secret stays inserted with
/// <c>encryption_key_missing</c>, <c>cont</c> answers DeviceEncrypted and an NBD client's reads fail, until
/// <c>block_passwd</c> gives the password qemu-io wrote the image with. A plain drive gets 2.8's error.
/// </summary>
public sealed class BlockPasswdTests
{
    private static Task<ProcessResult> QemuIoAsync(string socket, string command) =>
        Task.Run(() => ProcessRunner.Run(QemuIo.Path, ["-r", "-f", "raw", "-c", command, $"nbd+unix:///disk?socket={socket}"], TimeSpan.FromSeconds(60)));

    private static async Task<JsonObject> InsertedAsync(QemuStorageDaemon blk, string device) =>
        (await blk.Qmp.ExecuteOkAsync("query-block"))!.AsArray().Single(b => (string?)b!["device"] == device)!["inserted"]!.AsObject();

    private static string ErrorText(JsonObject reply) => $"{reply["error"]!["class"]}: {reply["error"]!["desc"]}";

    [Fact]
    public async Task A_legacy_aes_drive_waits_for_block_passwd_and_then_serves_what_qemu_io_wrote()
    {
        using var dir = new TempDirectory();
        string image = dir.File("aes.qcow2"), plain = dir.File("plain.img"), socket = dir.File("nbd.sock");
        const string secret = "secret,id=sec0,data=12345";
        QemuImg.Create("qcow2", image, "1M", "encrypt.format=aes,encrypt.key-secret=sec0", secret);
        ProcessRunner.Run(QemuIo.Path, ["--object", secret, "--image-opts", "-c", "write -P 0x6e 0 64k",
            $"driver=qcow2,file.filename={image},encrypt.key-secret=sec0"]).EnsureSuccess("qemu-io");
        QemuImg.Create("raw", plain, "1M");

        await using var blk = await BlkServe.StartAsync(
            "--drive", $"if=none,id=d0,file={image},format=qcow2", "--device", "virtio-blk-pci,id=vd0,drive=d0",
            "--drive", $"if=none,id=d1,file={plain},format=raw",
            "--nbd-server", $"addr.type=unix,addr.path={socket}");
        var inserted = await InsertedAsync(blk, "d0");
        Assert.True((bool)inserted["encrypted"]!);
        Assert.True((bool)inserted["encryption_key_missing"]!);
        Assert.False((bool)(await InsertedAsync(blk, "d1"))["encryption_key_missing"]!);

        Assert.Equal($"DeviceEncrypted: 'd0' ({image}) is encrypted", ErrorText(await blk.Qmp.ExecuteAsync("cont")));
        Assert.Equal("GenericError: Node 'd1' is not encrypted",
            ErrorText(await blk.Qmp.ExecuteAsync("block_passwd", new JsonObject { ["device"] = "d1", ["password"] = "x" })));
        Assert.Equal("GenericError: Parameter 'password' is missing",
            ErrorText(await blk.Qmp.ExecuteAsync("block_passwd", new JsonObject { ["device"] = "d0" })));

        await blk.Qmp.ExecuteOkAsync("nbd-server-add", new JsonObject { ["device"] = "d0", ["name"] = "disk" });
        var locked = await QemuIoAsync(socket, "read 0 4k");
        Assert.True(locked.Stdout.Contains("Input/output error", StringComparison.Ordinal), $"[{locked.ExitCode}] {locked.Stdout}{locked.Stderr}");

        await blk.Qmp.ExecuteOkAsync("block_passwd", new JsonObject { ["device"] = "d0", ["password"] = "12345" });
        Assert.False((bool)(await InsertedAsync(blk, "d0"))["encryption_key_missing"]!);
        await blk.Qmp.ExecuteOkAsync("cont");
        var read = await QemuIoAsync(socket, "read -P 0x6e 0 64k");
        Assert.True(read.ExitCode == 0 && !read.Stdout.Contains("fail", StringComparison.Ordinal), read.Stdout + read.Stderr);
    }

    [Fact]
    public async Task The_first_key_of_a_cdroms_encrypted_medium_loads_it_and_closes_its_open_tray_as_qemu_2_8_did()
    {
        using var dir = new TempDirectory();
        string image = dir.File("aes.qcow2");
        const string secret = "secret,id=sec0,data=12345";
        QemuImg.Create("qcow2", image, "1M", "encrypt.format=aes,encrypt.key-secret=sec0", secret);
        await using var blk = await BlkServe.StartAsync(
            "--drive", $"if=none,id=cd0,file={image},format=qcow2,read-only=on", "--device", "ide-cd,id=ide0,drive=cd0");
        await blk.Qmp.ExecuteOkAsync("blockdev-open-tray", new JsonObject { ["device"] = "cd0" });
        Assert.Equal([(true)], blk.Qmp.TakeEvents().Where(e => (string?)e["event"] == "DEVICE_TRAY_MOVED").Select(e => (bool)e["data"]!["tray-open"]!));

        await blk.Qmp.ExecuteOkAsync("block_passwd", new JsonObject { ["device"] = "cd0", ["password"] = "12345" });
        var moved = blk.Qmp.TakeEvents().Single(e => (string?)e["event"] == "DEVICE_TRAY_MOVED")["data"]!;
        Assert.Equal(("cd0", "ide0", false), ((string?)moved["device"], (string?)moved["id"], (bool)moved["tray-open"]!));
        var block = (await blk.Qmp.ExecuteOkAsync("query-block"))!.AsArray().Single(b => (string?)b!["device"] == "cd0")!;
        Assert.False((bool)block["tray_open"]!);
        Assert.False((bool)block["inserted"]!["encryption_key_missing"]!);

        // A key replacing a valid one is no medium change.
        await blk.Qmp.ExecuteOkAsync("blockdev-open-tray", new JsonObject { ["device"] = "cd0" });
        blk.Qmp.TakeEvents();
        await blk.Qmp.ExecuteOkAsync("block_passwd", new JsonObject { ["device"] = "cd0", ["password"] = "12345" });
        Assert.DoesNotContain(blk.Qmp.TakeEvents(), e => (string?)e["event"] == "DEVICE_TRAY_MOVED");
    }
}
