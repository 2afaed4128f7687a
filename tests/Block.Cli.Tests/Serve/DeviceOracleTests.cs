using System.Text.Json.Nodes;
using Block.TestSupport;

namespace Block.Cli.Tests.Serve;

/// <summary>
/// Guest devices on <c>blk serve --drive … --device …</c> (a fixed disk, CD-ROMs with trays) as <c>query-block</c>
/// shows them, against qemu-system-x86_64 7.2 given the same <c>-drive</c>/<c>-device</c> arguments.
/// </summary>
public sealed class DeviceOracleTests
{
    [Fact]
    public async Task Query_block_shows_removable_tray_lock_and_io_status_per_device_as_qemu_system_does()
    {
        using var dir = new TempDirectory();
        string disk = dir.File("disk.img"), quiet = dir.File("quiet.img"), cd = dir.File("cd.iso"), bare = dir.File("bare.img");
        QemuImg.Create("raw", disk, "16M");
        QemuImg.Create("raw", quiet, "16M");
        QemuImg.Create("raw", cd, "1M");
        QemuImg.Create("raw", bare, "1M");
        var s = new DeviceScenario()
            .Drive($"if=none,id=d0,file={disk},format=raw")
            .Device("virtio-blk-pci,id=vd0,drive=d0")
            .Drive($"if=none,id=d1,file={quiet},format=raw,werror=report,rerror=ignore")
            .Device("virtio-blk-pci,id=vd1,drive=d1")
            .Drive($"if=none,id=cd0,file={cd},format=raw,readonly=on")
            .Device("ide-cd,id=ide0,drive=cd0")
            .Drive($"if=none,id=cd1,file={cd},format=raw,readonly=on,rerror=stop,werror=report")
            .Device("virtio-scsi-pci,id=scsi0")
            .Device("scsi-cd,id=scd0,drive=cd1")
            .Drive($"if=none,id=none0,file={bare},format=raw")
            .Command("query-block")
            .Command("block_set_io_throttle", new JsonObject
            {
                ["id"] = "ide0", ["bps"] = 0, ["bps_rd"] = 0, ["bps_wr"] = 0, ["iops"] = 50, ["iops_rd"] = 0, ["iops_wr"] = 0,
            })
            .Command("query-block");
        await s.RunAsync();
        s.AssertSameReplies();
    }

    [Fact]
    public async Task Trays_open_and_close_with_qemu_systems_replies_errors_and_device_tray_moved_events()
    {
        using var dir = new TempDirectory();
        string disk = dir.File("disk.img"), cd = dir.File("cd.iso"), bare = dir.File("bare.img");
        QemuImg.Create("raw", disk, "16M");
        QemuImg.Create("raw", cd, "1M");
        QemuImg.Create("raw", bare, "1M");
        JsonObject Id(string id) => new() { ["id"] = id };
        var s = new DeviceScenario()
            .Drive($"if=none,id=d0,file={disk},format=raw")
            .Device("virtio-blk-pci,id=vd0,drive=d0")
            .Drive($"if=none,id=cd0,file={cd},format=raw,readonly=on")
            .Device("ide-cd,id=ide0,drive=cd0")
            .Drive($"if=none,id=cd1,file={cd},format=raw,readonly=on")
            .Device("virtio-scsi-pci,id=scsi0")
            .Device("scsi-cd,id=scd0,drive=cd1")
            .Drive($"if=none,id=none0,file={bare},format=raw")
            .Command("blockdev-open-tray", new JsonObject { ["device"] = "d0" })
            .Command("blockdev-close-tray", new JsonObject { ["device"] = "d0" })
            .Command("blockdev-open-tray", Id("ide0"))
            .Command("blockdev-open-tray", Id("ide0"))
            .Command("query-block")
            .Command("blockdev-close-tray", Id("ide0"))
            .Command("blockdev-close-tray", new JsonObject { ["device"] = "cd0" })
            .Command("blockdev-open-tray", new JsonObject { ["device"] = "cd1", ["force"] = true })
            .Command("blockdev-open-tray", new JsonObject { ["device"] = "none0" })
            .Command("blockdev-close-tray", new JsonObject { ["device"] = "none0" })
            .Command("blockdev-open-tray", new JsonObject { ["device"] = "nope" })
            .Command("blockdev-close-tray", Id("nope"))
            .Command("blockdev-open-tray")
            .Command("blockdev-close-tray", new JsonObject { ["device"] = "cd0", ["id"] = "ide0" })
            .Command("query-block");
        await s.RunAsync();
        s.AssertSameReplies();
    }
}
