using System.Text.Json.Nodes;
using Block.TestSupport;

namespace Block.Cli.Tests.Serve;

/// <summary>
/// <c>block_set_io_throttle</c> and its <c>query-block</c> view on <c>blk serve --drive</c>, against
/// qemu-system-x86_64 7.2 given the same <c>-drive</c>.
/// </summary>
public sealed class ThrottleOracleTests
{
    private static JsonObject Limits(string device, params (string Key, JsonNode? Value)[] extra)
    {
        var o = new JsonObject { ["device"] = device, ["bps"] = 0, ["bps_rd"] = 0, ["bps_wr"] = 0, ["iops"] = 0, ["iops_rd"] = 0, ["iops_wr"] = 0 };
        foreach (var (key, value) in extra)
        {
            if (key == "device" && value is null)
                o.Remove("device");
            else
                o[key] = value;
        }
        return o;
    }

    [Fact]
    public async Task Block_set_io_throttle_validates_sets_and_reports_limits_as_qemu_system_does()
    {
        using var dir = new TempDirectory();
        string a = dir.File("a.img"), b = dir.File("b.qcow2");
        QemuImg.Create("raw", a, "16M");
        QemuImg.Create("qcow2", b, "32M");
        var s = new DeviceScenario()
            .Drive($"if=none,id=d0,file={a},format=raw")
            .Drive($"if=none,id=d1,file={b},format=qcow2,throttling.iops-total=100,throttling.iops-total-max=200,throttling.iops-total-max-length=5,throttling.group=shared")
            .Command("query-block")
            // Each of QEMU's validation messages, in its order of checks.
            .Command("block_set_io_throttle", Limits("d0", ("bps", 1000), ("bps_rd", 5)))
            .Command("block_set_io_throttle", Limits("d0", ("iops_max", 5), ("iops_wr_max", 5)))
            .Command("block_set_io_throttle", Limits("d0", ("bps", 1000), ("iops_size", 512)))
            .Command("block_set_io_throttle", Limits("d0", ("bps", -1)))
            .Command("block_set_io_throttle", Limits("d0", ("bps", 1000), ("bps_max", 2000_000_000_000_000)))
            .Command("block_set_io_throttle", Limits("d0", ("bps", 1000), ("bps_max_length", 0)))
            .Command("block_set_io_throttle", Limits("d0", ("bps", 1000), ("bps_max_length", 3)))
            .Command("block_set_io_throttle", Limits("d0", ("bps", 1000), ("bps_max", 1000_000_000_000), ("bps_max_length", 2000)))
            .Command("block_set_io_throttle", Limits("d0", ("bps_wr_max", 1000)))
            .Command("block_set_io_throttle", Limits("d0", ("bps", 1000), ("bps_max", 100)))
            .Command("block_set_io_throttle", Limits("d0", ("bps_max_length", -1)))
            // Lookups.
            .Command("block_set_io_throttle", Limits("d0", ("device", null), ("bps", 1000)))
            .Command("block_set_io_throttle", Limits("d0", ("id", "x"), ("bps", 1000)))
            .Command("block_set_io_throttle", Limits("nope", ("bps", 1000)))
            .Command("block_set_io_throttle", Limits("d0", ("device", null), ("id", "nope"), ("bps", 1000)))
            // Settings and their view: a burst with its length, iops_size, the default group, a move, and off.
            .Command("block_set_io_throttle", Limits("d0", ("bps", 1000), ("bps_max", 2000), ("bps_max_length", 3), ("iops", 10), ("iops_size", 4096)))
            .Command("query-block")
            .Command("block_set_io_throttle", Limits("d0", ("bps_rd", 4096), ("iops_wr", 7), ("iops_wr_max", 8), ("group", "shared")))
            .Command("query-block")
            .Command("block_set_io_throttle", Limits("d1", ("bps_wr", 1 << 20), ("group", "other")))
            .Command("query-block")
            .Command("block_set_io_throttle", Limits("d0", ("group", "ignored")))
            .Command("query-block");
        await s.RunAsync();
        s.AssertSameReplies();
    }

    [Fact]
    public async Task Drives_join_an_object_made_throttle_group_as_qemu_system_joins_them()
    {
        using var dir = new TempDirectory();
        string a = dir.File("a.img"), b = dir.File("b.img"), c = dir.File("c.img");
        foreach (var file in new[] { a, b, c })
            QemuImg.Create("raw", file, "1M");
        // A drive naming the group without limits of its own stays out of it; a drive with limits joins it and its
        // limits become the group's, so the last drive's limits are every member's. The JSON form takes limits.*.
        var s = new DeviceScenario()
            .Object("throttle-group,id=g,x-iops-total=100,x-bps-read=4096")
            .Object("""{"qom-type":"throttle-group","id":"h","limits":{"iops-total":300,"iops-total-max":600}}""")
            .Drive($"if=none,id=d0,file={a},format=raw,throttling.group=g")
            .Drive($"if=none,id=d1,file={b},format=raw,throttling.group=g,throttling.iops-total=200")
            .Drive($"if=none,id=d2,file={c},format=raw,read-only=on,throttling.group=g,throttling.bps-total=5000")
            .Command("query-block")
            // block_set_io_throttle into an object's group sets that group's limits for all its members.
            .Command("block_set_io_throttle", Limits("d0", ("iops", 50), ("group", "h")))
            .Command("query-block")
            .Command("block_set_io_throttle", Limits("d1", ("bps", 8192), ("group", "g")))
            .Command("query-block")
            // A drive leaving by zero limits leaves the object's group in place for the others.
            .Command("block_set_io_throttle", Limits("d2"))
            .Command("query-block");
        await s.RunAsync();
        s.AssertSameReplies();
    }

    [Fact]
    public async Task An_nbd_export_of_a_drive_serves_the_drives_own_backend_so_its_statistics_count_nbd_clients()
    {
        using var dir = new TempDirectory();
        string image = dir.File("d.img"), socket = dir.File("nbd.sock");
        QemuImg.Create("raw", image, "16M");
        await using var blk = await BlkServe.StartAsync(
            "--drive", $"if=none,id=d0,file={image},format=raw,throttling.iops-total=1000",
            "--nbd-server", $"addr.type=unix,addr.path={socket}",
            "--export", "type=nbd,id=e0,node-name=d0,name=d0,writable=on");
        var io = ProcessRunner.Run(QemuIo.Path, ["-f", "raw", "-c", "write -q 0 4k", "-c", "read -q 0 4k", "-c", "read -q 4k 4k",
            $"nbd+unix:///d0?socket={socket}"]);
        Assert.True(io.ExitCode == 0, io.Stderr);
        var stats = (await blk.ExecuteOkAsync("query-blockstats"))!.AsArray().Single(s => (string?)s!["device"] == "d0")!["stats"]!;
        Assert.Equal((2, 1, 8192, 4096), ((int)stats["rd_operations"]!, (int)stats["wr_operations"]!, (int)stats["rd_bytes"]!, (int)stats["wr_bytes"]!));
    }

    [Fact]
    public async Task An_nbd_client_of_a_throttled_drive_is_held_to_its_limit()
    {
        using var dir = new TempDirectory();
        string image = dir.File("d.img"), socket = dir.File("nbd.sock");
        QemuImg.Create("raw", image, "16M");
        await using var blk = await BlkServe.StartAsync(
            "--drive", $"if=none,id=d0,file={image},format=raw,throttling.iops-total=20",
            "--nbd-server", $"addr.type=unix,addr.path={socket}");
        await blk.ExecuteOkAsync("nbd-server-add", new JsonObject { ["device"] = "d0", ["name"] = "d0" });
        var commands = Enumerable.Range(0, 30).SelectMany(i => new[] { "-c", $"read -q {i * 4096} 4k" });
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var io = ProcessRunner.Run(QemuIo.Path, ["-r", "-f", "raw", .. commands, $"nbd+unix:///d0?socket={socket}"], TimeSpan.FromSeconds(60));
        watch.Stop();
        Assert.True(io.ExitCode == 0, io.Stderr);
        // A lower bound only, which load can lengthen but never break: two reads pass on the first tenth of a second
        // of budget, the other 28 come at 20 a second, so 30 reads take at least 1.4 s.
        Assert.True(watch.Elapsed >= TimeSpan.FromSeconds(1.35), $"30 reads at 20 iops took {watch.Elapsed}");
        var stats = (await blk.ExecuteOkAsync("query-blockstats"))!.AsArray().Single(s => (string?)s!["device"] == "d0")!["stats"]!;
        Assert.Equal(30, (int)stats["rd_operations"]!);
    }
}
