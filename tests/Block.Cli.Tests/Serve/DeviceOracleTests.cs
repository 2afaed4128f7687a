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
    public async Task A_host_cdrom_drive_without_a_disc_shows_in_query_block_and_ejects_as_qemu_system_shows_it()
    {
        // /dev/zero is a character device that answers no CD-ROM ioctl: a drive with no disc, on any machine.
        using var dir = new TempDirectory();
        string cd = dir.File("cd.iso");
        QemuImg.Create("raw", cd, "1M");
        var s = new DeviceScenario()
            .Drive("if=none,id=cd0,format=raw,readonly=on,file.driver=host_cdrom,file.filename=/dev/zero")
            .Device("ide-cd,id=ide0,drive=cd0")
            .Drive("if=none,id=cd1,readonly=on,file.driver=host_cdrom,file.filename=/dev/zero")
            .Device("virtio-scsi-pci,id=scsi0")
            .Device("scsi-cd,id=scd0,drive=cd1")
            .Command("query-block")
            .Command("eject", new JsonObject { ["id"] = "ide0" })
            .Command("blockdev-change-medium", new JsonObject { ["id"] = "scd0", ["filename"] = cd, ["format"] = "raw" })
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

    [Fact]
    public async Task Device_commands_given_a_virtio_blk_pci_or_controller_id_find_no_block_backend_as_qemu_system_says()
    {
        using var dir = new TempDirectory();
        string disk = dir.File("disk.img"), cd = dir.File("cd.iso");
        QemuImg.Create("raw", disk, "16M");
        QemuImg.Create("raw", cd, "1M");
        var s = new DeviceScenario()
            .Drive($"if=none,id=d0,file={disk},format=raw")
            .Device("virtio-blk-pci,id=vd0,drive=d0")
            .Device("virtio-scsi-pci,id=scsi0")
            .Drive($"if=none,id=cd0,file={cd},format=raw,readonly=on")
            .Device("scsi-cd,id=scd0,drive=cd0");
        // The id of virtio-blk-pci names its PCI proxy and scsi0 is a controller: neither holds a backend.
        foreach (string id in new[] { "vd0", "scsi0", "nope" })
        {
            JsonObject Id() => new() { ["id"] = id };
            s.Command("blockdev-open-tray", Id())
                .Command("blockdev-close-tray", Id())
                .Command("blockdev-remove-medium", Id())
                .Command("blockdev-insert-medium", new JsonObject { ["id"] = id, ["node-name"] = "x" })
                .Command("blockdev-change-medium", new JsonObject { ["id"] = id, ["filename"] = cd })
                .Command("eject", Id())
                .Command("block_set_io_throttle", new JsonObject
                {
                    ["id"] = id, ["bps"] = 0, ["bps_rd"] = 0, ["bps_wr"] = 0, ["iops"] = 100, ["iops_rd"] = 0, ["iops_wr"] = 0,
                });
        }
        s.Command("eject", new JsonObject { ["id"] = "scd0" })
            .Command("query-block");
        await s.RunAsync();
        s.AssertSameReplies();
    }

    [Fact]
    public async Task Media_are_removed_inserted_changed_and_ejected_with_qemu_systems_replies_errors_events_and_query_block()
    {
        using var dir = new TempDirectory();
        string disk = dir.File("disk.img"), cd = dir.File("cd.iso"), added = dir.File("added.iso"), other = dir.File("other.iso"),
            changed = dir.File("changed.iso"), probed = dir.File("probed.iso"), loose = dir.File("loose.img"), plain = dir.File("plain.img"),
            raw = dir.File("raw.img"), unused = dir.File("unused.img");
        QemuImg.Create("raw", disk, "16M");
        foreach (var (path, size) in new[] { (cd, "1M"), (added, "2M"), (other, "3M"), (changed, "4M"), (probed, "5M"), (loose, "6M"), (plain, "7M"), (raw, "1M"), (unused, "1M") })
            QemuImg.Create("raw", path, size);
        JsonObject Id(string id) => new() { ["id"] = id };
        JsonObject Device(string device) => new() { ["device"] = device };
        JsonObject Change(string device, string filename, string? format = null, string? mode = null)
        {
            var o = new JsonObject { ["device"] = device, ["filename"] = filename };
            if (format != null)
                o["format"] = format;
            if (mode != null)
                o["read-only-mode"] = mode;
            return o;
        }
        var s = new DeviceScenario()
            .Drive($"if=none,id=cd0,file={cd},format=raw,readonly=on")
            .Device("ide-cd,id=ide0,drive=cd0")
            .Drive("if=none,id=e0")
            .Device("virtio-scsi-pci,id=scsi0")
            .Device("scsi-cd,id=scd0,drive=e0")
            .Drive("if=none,id=n0")
            .Drive($"if=none,id=w0,file={plain},format=raw")
            .Drive($"if=none,id=d0,file={disk},format=raw")
            .Device("virtio-blk-pci,id=vd0,drive=d0")
            .Command("query-block")
            .Command("blockdev-remove-medium", Id("ide0"))
            .Command("blockdev-open-tray", Id("ide0"))
            .Command("blockdev-remove-medium", Id("ide0"))
            .Command("blockdev-remove-medium", Id("ide0"))
            .Command("query-block")
            .Command("blockdev-add", new JsonObject { ["driver"] = "file", ["node-name"] = "new0", ["filename"] = added, ["read-only"] = true })
            .Command("blockdev-add", new JsonObject { ["driver"] = "raw", ["node-name"] = "new1", ["file"] = new JsonObject { ["driver"] = "file", ["filename"] = other } })
            .Command("blockdev-insert-medium", new JsonObject { ["id"] = "ide0", ["node-name"] = "nope" })
            .Command("blockdev-insert-medium", new JsonObject { ["id"] = "ide0", ["node-name"] = "new0" })
            .Command("blockdev-insert-medium", new JsonObject { ["id"] = "ide0", ["node-name"] = "new0" })
            .Command("blockdev-insert-medium", new JsonObject { ["id"] = "scd0", ["node-name"] = "new1" })
            .Command("query-block")
            .Command("blockdev-close-tray", Id("ide0"))
            .Command("blockdev-remove-medium", Device("n0"))
            .Command("blockdev-remove-medium", Id("cd0"))
            .Command("eject", Device("n0"))
            .Command("eject", Id("scd0"))
            .Command("eject", Device("d0"))
            .Command("blockdev-insert-medium", new JsonObject { ["id"] = "scd0", ["node-name"] = "new1" })
            .Command("blockdev-del", new JsonObject { ["node-name"] = "new1" })
            .Command("block_set_io_throttle", new JsonObject
            {
                ["device"] = "cd0", ["bps"] = 0, ["bps_rd"] = 0, ["bps_wr"] = 0, ["iops"] = 0, ["iops_rd"] = 100, ["iops_wr"] = 0,
            })
            .Command("blockdev-change-medium", Change("cd0", changed, "raw"))
            .Command("blockdev-change-medium", new JsonObject { ["id"] = "scd0", ["filename"] = probed })
            .Command("blockdev-change-medium", Change("n0", loose, mode: "read-only"))
            .Command("blockdev-change-medium", Change("w0", raw, "raw", "read-write"))
            .Command("blockdev-change-medium", Change("d0", raw, "raw"))
            .Command("blockdev-change-medium", Change("cd0", dir.File("missing.iso"), "raw"))
            .Command("blockdev-change-medium", Change("cd0", unused, "qcow2"))
            .Command("blockdev-change-medium", Change("cd0", raw, "bogus"))
            .Command("blockdev-change-medium", Change("nope", raw))
            .Command("query-block")
            .Command("blockdev-del", new JsonObject { ["node-name"] = "new0" });
        await s.RunAsync();
        s.AssertSameReplies();
    }

    [Fact]
    public async Task Query_blockstats_has_qemu_systems_shape_per_drive_and_per_node_with_stats_intervals_and_accounting_flags()
    {
        using var dir = new TempDirectory();
        string disk = dir.File("disk.img"), image = dir.File("image.qcow2");
        QemuImg.Create("raw", disk, "1M");
        QemuImg.Create("qcow2", image, "4M");
        var s = new DeviceScenario()
            .Drive($"if=none,id=d0,file={disk},format=raw,stats-intervals.0=60,stats-intervals.1=5")
            .Device("virtio-blk-pci,id=vd0,drive=d0")
            .Drive("if=none,id=e0")
            .Drive($"if=none,id=q0,file={image},format=qcow2,stats-account-invalid=off,stats-account-failed=off")
            // QEMU 7.2's additions to the seed's BlockDeviceStats and BlockStats.
            .Ignoring("unmap_operations", "unmap_merged", "unmap_bytes", "unmap_total_time_ns", "failed_unmap_operations",
                "invalid_unmap_operations", "driver-specific")
            .Command("query-blockstats")
            .Command("query-blockstats", new JsonObject { ["query-nodes"] = true });
        await s.RunAsync();
        s.AssertSameReplies();
    }
}
