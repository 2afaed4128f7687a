using System.Text.Json.Nodes;
using Block.TestSupport;

namespace Block.Cli.Tests.Serve;

/// <summary>
/// <c>rerror</c>/<c>werror</c> on <c>blk serve --drive</c>, driven over QMP: blkdebug injects the error under the
/// drive's format node, qemu-io does the guest's I/O through an NBD export of the drive (which serves the drive's own
/// backend, as 2.8's <c>nbd-server-add device=</c> does), and the monitor shows <c>BLOCK_IO_ERROR</c>,
/// <c>STOP</c>/<c>RESUME</c> and the io-status. A stopped request is held until <c>cont</c>, which retries it.
/// </summary>
public sealed class ErrorPolicyTests
{
    private static string[] CommandLine(string image, string socket, string policy, string injectEvent, int errno) =>
    [
        "--drive", $"if=none,id=d0,driver=raw,file.driver=blkdebug,file.image.driver=file,file.image.filename={image}," +
            $"file.inject-error.0.event={injectEvent},file.inject-error.0.errno={errno},file.inject-error.0.once=on,{policy}",
        "--device", "virtio-blk-pci,id=vd0,drive=d0",
        "--nbd-server", $"addr.type=unix,addr.path={socket}",
    ];

    private static async Task ExportAsync(QemuStorageDaemon blk) =>
        await blk.Qmp.ExecuteOkAsync("nbd-server-add", new JsonObject { ["device"] = "d0", ["name"] = "disk", ["writable"] = true });

    private static Task<ProcessResult> QemuIoAsync(string socket, string command) =>
        Task.Run(() => ProcessRunner.Run(QemuIo.Path, ["-f", "raw", "-c", command, $"nbd+unix:///disk?socket={socket}"], TimeSpan.FromSeconds(60)));

    private static async Task<string?> IoStatusAsync(QemuStorageDaemon blk) =>
        (string?)(await blk.Qmp.ExecuteOkAsync("query-block"))![0]!["io-status"];

    /// <summary>The event's data, members sorted, the generated root node name masked.</summary>
    private static string EventText(JsonObject e) =>
        string.Join(",", e["data"]!.AsObject()
            .Select(p => p.Key == "node-name" ? "node-name=#block" : $"{p.Key}={p.Value!.ToJsonString()}")
            .Order(StringComparer.Ordinal));

    [Fact]
    public async Task A_write_error_under_werror_stop_holds_the_request_until_cont_retries_it()
    {
        using var dir = new TempDirectory();
        string image = dir.File("disk.img"), socket = dir.File("nbd.sock");
        QemuImg.Create("raw", image, "1M");
        await using var blk = await BlkServe.StartAsync(CommandLine(image, socket, "werror=stop,rerror=stop", "write_aio", 5));
        await ExportAsync(blk);
        Assert.Equal("ok", await IoStatusAsync(blk));

        var write = QemuIoAsync(socket, "write -P 0x5a 0 64k");
        var error = await blk.Qmp.WaitEventAsync("BLOCK_IO_ERROR", TimeSpan.FromSeconds(30));
        Assert.Equal("action=\"stop\",device=\"d0\",node-name=#block,nospace=false,operation=\"write\",reason=\"Input/output error\"", EventText(error));
        await blk.Qmp.WaitEventAsync("STOP", TimeSpan.FromSeconds(30));
        Assert.Equal("failed", await IoStatusAsync(blk));
        Assert.False(write.IsCompleted);

        await blk.Qmp.ExecuteOkAsync("cont");
        await blk.Qmp.WaitEventAsync("RESUME", TimeSpan.FromSeconds(30));
        var result = await write.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(result.ExitCode == 0, result.Stderr + result.Stdout);
        Assert.Equal("ok", await IoStatusAsync(blk));
        Assert.Equal(0, QemuIo.Run(image, "raw", "read -q -P 0x5a 0 64k").ExitCode);
    }

    [Fact]
    public async Task Enospc_stops_on_no_space_with_nospace_io_status_and_reports_other_errors()
    {
        using var dir = new TempDirectory();
        string image = dir.File("disk.img"), socket = dir.File("nbd.sock");
        QemuImg.Create("raw", image, "1M");
        await using (var blk = await BlkServe.StartAsync(CommandLine(image, socket, "werror=enospc", "write_aio", 28)))
        {
            await ExportAsync(blk);
            var write = QemuIoAsync(socket, "write -P 0x33 0 4k");
            var error = await blk.Qmp.WaitEventAsync("BLOCK_IO_ERROR", TimeSpan.FromSeconds(30));
            Assert.Equal("action=\"stop\",device=\"d0\",node-name=#block,nospace=true,operation=\"write\",reason=\"No space left on device\"", EventText(error));
            await blk.Qmp.WaitEventAsync("STOP", TimeSpan.FromSeconds(30));
            Assert.Equal("nospace", await IoStatusAsync(blk));
            await blk.Qmp.ExecuteOkAsync("cont");
            Assert.Equal(0, (await write.WaitAsync(TimeSpan.FromSeconds(60))).ExitCode);
        }
        await using (var blk = await BlkServe.StartAsync(CommandLine(image, socket, "werror=enospc", "write_aio", 5)))
        {
            await ExportAsync(blk);
            var result = await QemuIoAsync(socket, "write -P 0x33 0 4k");
            Assert.Contains("Input/output error", result.Stdout + result.Stderr);
            var error = await blk.Qmp.WaitEventAsync("BLOCK_IO_ERROR", TimeSpan.FromSeconds(30));
            Assert.Equal("action=\"report\",device=\"d0\",node-name=#block,nospace=false,operation=\"write\",reason=\"Input/output error\"", EventText(error));
            Assert.Equal("ok", await IoStatusAsync(blk));
            Assert.DoesNotContain(blk.Qmp.TakeEvents(), e => (string?)e["event"] == "STOP");
        }
    }

    [UserNamespaceFact]
    public async Task Enospc_stops_on_a_really_full_file_system_and_cont_retries_once_space_is_freed()
    {
        using var dir = new TempDirectory();
        string fs = dir.File("fs"), socket = dir.File("nbd.sock");
        Directory.CreateDirectory(fs);

        // blk serve runs in a mount namespace with a 1 MiB tmpfs: a sparse 8 MiB image beside a 960 KiB filler, so
        // writing 256 KiB of data runs the file system out of space.
        await using var blk = await TmpfsNamespace.StartBlkServeAsync(fs, "1M",
            "truncate -s 8M \"$0/disk.img\" && dd if=/dev/zero of=\"$0/filler\" bs=64k count=15 status=none",
            ["--drive", $"if=none,id=d0,file={fs}/disk.img,format=raw,werror=enospc,rerror=report", "--device", "virtio-blk-pci,id=vd0,drive=d0",
             "--nbd-server", $"addr.type=unix,addr.path={socket}"]);
        await ExportAsync(blk);

        var write = QemuIoAsync(socket, "write -P 0x7d 1M 256k");
        var error = await blk.Qmp.WaitEventAsync("BLOCK_IO_ERROR", TimeSpan.FromSeconds(60));
        Assert.Equal("action=\"stop\",device=\"d0\",node-name=#block,nospace=true,operation=\"write\",reason=\"No space left on device\"", EventText(error));
        await blk.Qmp.WaitEventAsync("STOP", TimeSpan.FromSeconds(60));
        Assert.Equal("nospace", await IoStatusAsync(blk));
        Assert.False(write.IsCompleted);

        // Free the space (the namespace's tmpfs, reached through the server's own root) and continue: the held write
        // is retried and succeeds.
        File.Delete(TmpfsNamespace.Inside(blk, $"{fs}/filler"));
        await blk.Qmp.ExecuteOkAsync("cont");
        await blk.Qmp.WaitEventAsync("RESUME", TimeSpan.FromSeconds(60));
        var result = await write.WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(result.ExitCode == 0 && !result.Stdout.Contains("fail", StringComparison.Ordinal), result.Stdout + result.Stderr);
        Assert.Equal("ok", await IoStatusAsync(blk));
        var read = await QemuIoAsync(socket, "read -P 0x7d 1M 256k");
        Assert.True(read.ExitCode == 0 && !read.Stdout.Contains("fail", StringComparison.Ordinal), read.Stdout + read.Stderr);
    }

    [Fact]
    public async Task A_read_error_under_rerror_ignore_reaches_the_client_as_success_with_an_ignore_event_and_no_io_status()
    {
        using var dir = new TempDirectory();
        string image = dir.File("disk.img"), socket = dir.File("nbd.sock");
        QemuImg.Create("raw", image, "1M");
        await using var blk = await BlkServe.StartAsync(CommandLine(image, socket, "rerror=ignore,werror=report", "read_aio", 5));
        await ExportAsync(blk);
        var result = await QemuIoAsync(socket, "read 0 4k");
        Assert.True(result.ExitCode == 0 && !result.Stdout.Contains("error", StringComparison.Ordinal), result.Stdout + result.Stderr);
        var error = await blk.Qmp.WaitEventAsync("BLOCK_IO_ERROR", TimeSpan.FromSeconds(30));
        Assert.Equal("action=\"ignore\",device=\"d0\",node-name=#block,operation=\"read\",reason=\"Input/output error\"", EventText(error));
        Assert.Null(await IoStatusAsync(blk));
    }
}
