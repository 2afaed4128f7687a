using System.Diagnostics;
using System.Text.Json.Nodes;
using Block.TestSupport;

namespace Block.Cli.Tests.Serve;

/// <summary><c>blk serve</c> as a process, beside qemu-storage-daemon 7.2 where the two are compared.</summary>
public sealed class ServeTests
{
    [Fact]
    public async Task The_graph_of_the_command_line_is_queried_as_qemu_storage_daemon_reports_it()
    {
        using var dir = new TempDirectory();
        string theirs = dir.File("theirs.qcow2"), ours = dir.File("ours.qcow2");
        QemuImg.Create("qcow2", theirs, "64M");
        File.Copy(theirs, ours);

        await using var qsd = await QemuStorageDaemon.StartAsync(Blockdevs(theirs));
        await using var blk = await BlkServe.StartAsync(Blockdevs(ours));

        var expected = (await qsd.ExecuteOkAsync("query-named-block-nodes"))!.AsArray();
        var actual = (await blk.ExecuteOkAsync("query-named-block-nodes"))!.AsArray();
        Assert.Equal(Comparable(expected, theirs), Comparable(actual, ours));
        Assert.Empty((await blk.ExecuteOkAsync("query-block"))!.AsArray());
    }

    [Fact]
    public async Task Quit_closes_every_image_drops_its_locks_and_exits_zero()
    {
        using var dir = new TempDirectory();
        string image = dir.File("a.qcow2");
        QemuImg.Create("qcow2", image, "64M");
        await using var blk = await BlkServe.StartAsync(Blockdevs(image));

        var locked = QemuImg.Run("info", image);
        Assert.NotEqual(0, locked.ExitCode);
        Assert.Contains("Failed to get shared \"write\" lock", locked.Stderr);

        Assert.True(await blk.QuitAsync());
        Assert.Equal(0, blk.ExitCode);
        Assert.Equal(0, QemuImg.Check(image, "qcow2").ExitCode);
        Assert.Equal(0, QemuImg.Run("info", image).ExitCode);
    }

    [Theory]
    [InlineData("TERM")]
    [InlineData("INT")]
    [InlineData("HUP")]
    public async Task A_termination_signal_closes_every_image_and_exits_zero(string signal)
    {
        using var dir = new TempDirectory();
        string image = dir.File("a.qcow2");
        QemuImg.Create("qcow2", image, "64M");
        await using var blk = await BlkServe.StartAsync(Blockdevs(image));
        await blk.ExecuteOkAsync("query-named-block-nodes");

        using (var kill = Process.Start("kill", ["-" + signal, blk.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
            await kill.WaitForExitAsync();
        for (int i = 0; i < 600 && !blk.HasExited; i++)
            await Task.Delay(50);
        Assert.True(blk.HasExited, "blk serve did not exit on SIG" + signal);
        Assert.Equal(0, blk.ExitCode);
        Assert.Equal(0, QemuImg.Run("info", image).ExitCode);
    }

    [Theory]
    [InlineData("INT")]
    [InlineData("HUP")]
    public async Task A_termination_signal_inherited_as_ignored_still_stops_blk_serve_as_it_stops_qemu_storage_daemon(string signal)
    {
        // A non-interactive shell starts background jobs with SIGINT ignored; CI harnesses do the same.
        const string ignoring = "trap '' INT HUP; exec \"$0\" \"$@\"";
        using var dir = new TempDirectory();
        foreach (var (program, leading) in new (string, string[])[]
            { (QemuStorageDaemon.Path, []), ("dotnet", [BlkServe.Assembly, "serve"]) })
        {
            string image = dir.File(Path.GetFileName(program) + ".qcow2");
            QemuImg.Create("qcow2", image, "64M");
            await using var daemon = await QemuStorageDaemon.StartAsync("sh", ["-c", ignoring, program, .. leading], Blockdevs(image));
            await daemon.ExecuteOkAsync("query-named-block-nodes");

            using (var kill = Process.Start("kill", ["-" + signal, daemon.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
                await kill.WaitForExitAsync();
            for (int i = 0; i < 600 && !daemon.HasExited; i++)
                await Task.Delay(50);
            Assert.True(daemon.HasExited, program + " did not exit on SIG" + signal);
            Assert.Equal(0, daemon.ExitCode);
            Assert.Equal(0, QemuImg.Run("info", image).ExitCode);
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Persistent_bitmaps_added_over_qmp_are_stored_at_exit_as_qemu_storage_daemon_stores_them(bool bySignal)
    {
        using var dir = new TempDirectory();
        string theirs = dir.File("theirs.qcow2"), ours = dir.File("ours.qcow2");
        QemuImg.Create("qcow2", theirs, "64M");
        File.Copy(theirs, ours);
        foreach (var (start, image) in new (Func<string[], Task<QemuStorageDaemon>>, string)[]
            { (QemuStorageDaemon.StartAsync, theirs), (BlkServe.StartAsync, ours) })
        {
            await using var daemon = await start(Blockdevs(image));
            await daemon.ExecuteOkAsync("block-dirty-bitmap-add", new JsonObject { ["node"] = "fmt0", ["name"] = "b0", ["persistent"] = true });
            await daemon.ExecuteOkAsync("block-dirty-bitmap-add", new JsonObject { ["node"] = "fmt0", ["name"] = "b1", ["persistent"] = true, ["granularity"] = 131072 });
            await daemon.ExecuteOkAsync("block-dirty-bitmap-add", new JsonObject { ["node"] = "fmt0", ["name"] = "transient" });
            if (bySignal)
            {
                using (var kill = Process.Start("kill", ["-TERM", daemon.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
                    await kill.WaitForExitAsync();
                for (int i = 0; i < 600 && !daemon.HasExited; i++)
                    await Task.Delay(50);
            }
            else
            {
                Assert.True(await daemon.QuitAsync());
            }
            Assert.True(daemon.HasExited);
        }
        Assert.Equal(0, QemuImg.Check(ours, "qcow2").ExitCode);
        Assert.Equal(Bitmaps(theirs), Bitmaps(ours));
        Assert.Contains("\"b1\"", Bitmaps(ours));
    }

    private static string Bitmaps(string image) =>
        QemuImg.Info(image, "qcow2")["format-specific"]!["data"]!["bitmaps"]!.ToJsonString();

    [Fact]
    public async Task A_stdio_monitor_talks_qmp_on_stdin_and_stdout_as_qemu_storage_daemons_does()
    {
        string[] session =
        [
            "{\"execute\":\"qmp_capabilities\"}",
            "{\"execute\":\"blockdev-add\",\"arguments\":{\"driver\":\"null-co\",\"node-name\":\"n0\"},\"id\":1}",
            "{\"execute\":\"blockdev-add\",\"arguments\":{\"driver\":\"null-co\",\"node-name\":\"n0\"},\"id\":2}",
            "{\"execute\":\"quit\",\"id\":3}",
        ];
        var theirs = await RunStdioAsync(QemuStorageDaemon.Path, [], session);
        var ours = await RunStdioAsync("dotnet", [BlkServe.Assembly, "serve"], session);
        Assert.Equal(theirs.Skip(1), ours.Skip(1));
        Assert.StartsWith("{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 0, \"minor\": 9, \"major\": 2}", ours[0], StringComparison.Ordinal);
    }

    [Fact]
    public async Task Socat_a_client_we_did_not_write_gets_what_it_gets_from_qemu_storage_daemon()
    {
        using var dir = new TempDirectory();
        string[] session =
        [
            "{\"execute\":\"qmp_capabilities\"}",
            "{\"execute\":\"blockdev-add\",\"arguments\":{\"driver\":\"null-co\",\"node-name\":\"n0\",\"size\":4096},\"id\":1}",
            "{\"execute\":\"block_resize\",\"arguments\":{\"node-name\":\"n0\",\"size\":-1},\"id\":2}",
            "{\"execute\":\"blockdev-del\",\"arguments\":{\"node-name\":\"n0\"},\"id\":3}",
            "{\"execute\":\"quit\",\"id\":4}",
        ];
        var results = new List<List<string>>();
        foreach (var (program, leading) in new[] { (QemuStorageDaemon.Path, Array.Empty<string>()), ("dotnet", new[] { BlkServe.Assembly, "serve" }) })
        {
            string socket = dir.File(results.Count + ".sock");
            var daemon = new ProcessStartInfo(program) { RedirectStandardError = true, RedirectStandardOutput = true, UseShellExecute = false };
            foreach (string a in leading.Concat(["--chardev", $"socket,id=m0,path={socket},server=on,wait=on", "--monitor", "chardev=m0"]))
                daemon.ArgumentList.Add(a);
            using var process = Process.Start(daemon)!;
            for (int i = 0; i < 600 && !File.Exists(socket); i++)
                await Task.Delay(50);
            var socat = new ProcessStartInfo("socat") { RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false };
            socat.ArgumentList.Add("-");
            socat.ArgumentList.Add($"UNIX-CONNECT:{socket}");
            using var client = Process.Start(socat)!;
            foreach (string line in session)
                await client.StandardInput.WriteLineAsync(line);
            await client.StandardInput.FlushAsync();
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            string output = await client.StandardOutput.ReadToEndAsync(cts.Token);
            await process.WaitForExitAsync(cts.Token);
            Assert.Equal(0, process.ExitCode);
            results.Add([.. output.Split("\r\n", StringSplitOptions.RemoveEmptyEntries).Skip(1)]);
        }
        Assert.Equal(results[0], results[1]);
    }

    private static async Task<List<string>> RunStdioAsync(string program, string[] leading, string[] session)
    {
        var psi = new ProcessStartInfo(program) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string a in leading.Concat(["--chardev", "stdio,id=s0", "--monitor", "chardev=s0"]))
            psi.ArgumentList.Add(a);
        using var process = Process.Start(psi)!;
        var stderr = process.StandardError.ReadToEndAsync();
        foreach (string line in session)
            await process.StandardInput.WriteLineAsync(line);
        await process.StandardInput.FlushAsync();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        string output = await process.StandardOutput.ReadToEndAsync(cts.Token);
        await process.WaitForExitAsync(cts.Token);
        Assert.True(process.ExitCode == 0, $"{program} exited with {process.ExitCode}: {await stderr}");
        return [.. output.Split("\r\n", StringSplitOptions.RemoveEmptyEntries)];
    }

    public static TheoryData<string[]> BadCommandLines => new()
    {
        new[] { "--blockdev", "driver=file,node-name=f0,filename=/nonexistent/x.qcow2" },
        new[] { "--blockdev", "driver=file,filename=/dev/null" },
        new[] { "--blockdev", "{\"driver\":\"file\",\"node-name\":\"f0\",\"filename\":\"/dev/null\",\"x\":1}" },
        new[] { "--chardev", "socket,id=m0,path=/tmp/blk-serve-test-unused.sock,server=on,wait=off", "--monitor", "chardev=m1" },
        new[] { "--bogus" },
        new[] { "extra" },
        new[] { "--object", "secret,id=s0" },
        // QSD's keyval --object takes limits.* (qemu-system's QemuOpts -object refuses them; blk serve follows QSD).
        new[] { "--object", "throttle-group,id=g,limits.iops-totl=100" },
        new[] { "--object", "throttle-group,id=g,limits.iops-total=abc" },
        new[] { "--object", "throttle-group,id=g,limits.iops-total=100,limits.iops-total-max=50" },
        new[] { "--object", "throttle-group,id=g,x-bps-read=10,limits.bps-total=5" },
        new[] { "--object", "throttle-group,id=g,limits.iops-total=1", "--object", "throttle-group,id=g" },
        new[] { "--object", "secret,id=g,data=x", "--object", "throttle-group,id=g" },
        new[] { "--object", "throttle-group,id=g", "--object", "secret,id=g,data=x" },
        new[] { "--monitor", "chardev=m0,mode=readline" },
    };

    [Theory]
    [MemberData(nameof(BadCommandLines))]
    public void A_bad_command_line_fails_with_the_option_and_qemus_message(string[] arguments)
    {
        var theirs = ProcessRunner.Run(QemuStorageDaemon.Path, arguments, TimeSpan.FromSeconds(30));
        var ours = BlkServe.Run(arguments);
        Assert.Equal(1, theirs.ExitCode);
        Assert.Equal(1, ours.ExitCode);
        // getopt names the program by its path ("/usr/bin/qemu-storage-daemon: unrecognized option").
        Assert.Equal(System.Text.RegularExpressions.Regex.Replace(theirs.Stderr, @"^\S*qemu-storage-daemon: ", "blk: "), ours.Stderr);
    }

    [Fact]
    public async Task The_pid_file_is_written_after_startup_and_removed_at_exit()
    {
        using var dir = new TempDirectory();
        string pidFile = dir.File("blk.pid");
        await using var blk = await BlkServe.StartAsync("--pidfile", pidFile);
        Assert.Equal(blk.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture), File.ReadAllText(pidFile).Trim());
        Assert.True(await blk.QuitAsync());
        Assert.False(File.Exists(pidFile));
    }

    [Fact]
    public async Task Daemonize_returns_once_the_daemon_serves_and_the_daemon_goes_on()
    {
        using var dir = new TempDirectory();
        string socket = dir.File("d.sock"), pidFile = dir.File("d.pid"), image = dir.File("a.qcow2");
        QemuImg.Create("qcow2", image, "64M");
        var parent = BlkServe.Run([.. Blockdevs(image), "--chardev", $"socket,id=m0,path={socket},server=on,wait=off", "--monitor", "chardev=m0",
            "--pidfile", pidFile, "--daemonize"]);
        Assert.Equal(0, parent.ExitCode);
        Assert.Equal("", parent.Stderr);
        int pid = int.Parse(File.ReadAllText(pidFile).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        await using (var client = await QmpClient.ConnectUnixAsync(socket))
        {
            await client.NegotiateAsync();
            var nodes = (await client.ExecuteOkAsync("query-named-block-nodes"))!.AsArray();
            Assert.Equal(2, nodes.Count);
            await client.ExecuteAsync("quit");
        }
        using var daemon = Process.GetProcessById(pid);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await daemon.WaitForExitAsync(cts.Token);
        Assert.Equal(0, QemuImg.Run("info", image).ExitCode);
    }

    [Fact]
    public async Task Several_monitors_serve_clients_at_once_and_each_sees_the_others_changes()
    {
        using var dir = new TempDirectory();
        string second = dir.File("second.sock");
        await using var blk = await BlkServe.StartAsync("--chardev", $"socket,id=m1,path={second},server=on,wait=off", "--monitor", "chardev=m1,pretty=on");
        await using var other = await QmpClient.ConnectUnixAsync(second);
        await other.NegotiateAsync();
        await blk.ExecuteOkAsync("blockdev-add", new JsonObject { ["driver"] = "null-co", ["node-name"] = "n0" });
        await other.ExecuteOkAsync("blockdev-add", new JsonObject { ["driver"] = "null-co", ["node-name"] = "n1" });
        var seen = (await other.ExecuteOkAsync("query-named-block-nodes"))!.AsArray().Select(n => (string)n!["node-name"]!).Order();
        Assert.Equal(["n0", "n1"], seen);
        var duplicate = await blk.ExecuteAsync("blockdev-add", new JsonObject { ["driver"] = "null-co", ["node-name"] = "n1" });
        Assert.Equal("GenericError", (string)duplicate["error"]!["class"]!);
    }

    private static string[] Blockdevs(string image) =>
    [
        "--blockdev", $"driver=file,node-name=file0,filename={image}",
        "--blockdev", "{\"driver\":\"qcow2\",\"node-name\":\"fmt0\",\"file\":\"file0\"}",
    ];

    /// <summary>
    /// The members the 2.9 schema and QEMU 7.2 agree on (7.2 dropped <c>encryption_key_missing</c>), with the image
    /// path made neutral.
    /// </summary>
    private static string Comparable(JsonArray nodes, string image)
    {
        string[] members = ["node-name", "drv", "ro", "encrypted", "file", "backing_file_depth", "detect_zeroes",
            "bps", "bps_rd", "bps_wr", "iops", "iops_rd", "iops_wr", "write_threshold", "cache"];
        var lines = new List<string>();
        foreach (var node in nodes.OrderBy(n => (string)n!["node-name"]!))
        {
            var kept = new JsonObject();
            foreach (string m in members)
            {
                if (node![m] is { } value)
                    kept[m] = value.DeepClone();
            }
            var image_ = node!["image"]!;
            foreach (string m in new[] { "virtual-size", "format", "cluster-size", "dirty-flag", "filename" })
            {
                if (image_[m] is { } value)
                    kept["image." + m] = value.DeepClone();
            }
            lines.Add(kept.ToJsonString().Replace(image, "IMAGE", StringComparison.Ordinal));
        }
        return string.Join("\n", lines);
    }
}
