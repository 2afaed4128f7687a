using Block.TestSupport;

namespace Block.Cli.Tests.Nbd;

/// <summary>
/// <c>blk nbd</c> as a qemu-nbd 7.2 drop-in: each scenario runs once with qemu-nbd and once with <c>blk nbd</c> on a
/// copy of the same image, read by clients we did not write (nbdinfo, qemu-io, qemu-img), and the answers compared.
/// </summary>
public sealed class BlkNbdTests
{
    /// <summary>An image with data, a zeroed range and a hole: 1 MiB of 0x61 at 0, zeroes at 4 MiB, 64 MiB long.</summary>
    private static string MakeImage(TempDirectory dir, string name)
    {
        string path = dir.File(name);
        QemuImg.Create("qcow2", path, "64M");
        QemuIo.RunChecked(path, "qcow2", "write -q -P 0x61 0 1M", "write -q -z 4M 1M", "write -q -P 0x62 40M 64k");
        return path;
    }

    private static (string Theirs, string Ours) Side(TempDirectory dir, Func<string, NbdProcess> qemu, Func<string, NbdProcess> blk, Func<NbdProcess, string> client)
    {
        string theirs, ours;
        using (var q = qemu(dir.File("q.sock")))
            theirs = client(q);
        using (var b = blk(dir.File("b.sock")))
            ours = client(b);
        return (theirs, ours);
    }

    public static TheoryData<string[]> ExportShapes => new()
    {
        new[] { "-f", "qcow2", "-x", "disk", "-D", "a disk", "-t" },
        new[] { "-f", "qcow2", "-x", "disk", "-r", "-t" },
        new[] { "-f", "qcow2", "-x", "disk", "-e", "3", "-t" },
        new[] { "-x", "disk", "-s", "-t" },
        new[] { "-f", "qcow2", "-x", "disk", "--cache=none", "--aio=threads", "--discard=unmap", "--detect-zeroes=unmap", "-t" },
    };

    [Theory]
    [MemberData(nameof(ExportShapes))]
    public void Nbdinfo_json_and_map_of_blk_nbd_match_qemu_nbds(string[] arguments)
    {
        using var dir = new TempDirectory();
        string image = MakeImage(dir, "a.qcow2");
        string Describe(NbdProcess server) =>
            NbdInfo.Run(server.Socket, "--json", server.Uri("disk")) + NbdInfo.Run(server.Socket, "--map", server.Uri("disk"))
            + NbdInfo.Run(server.Socket, "--list", server.Uri());
        var (theirs, ours) = Side(dir, s => NbdProcess.Qemu(s, [.. arguments, image]), s => NbdProcess.Blk(s, [.. arguments, image]), Describe);
        Assert.Equal(theirs.Replace("q.sock", "X"), ours.Replace("b.sock", "X"));
    }

    [Fact]
    public void Image_opts_export_matches_qemu_nbds()
    {
        using var dir = new TempDirectory();
        string image = MakeImage(dir, "a.qcow2");
        string[] arguments = ["--image-opts", "-x", "disk", "-t", $"driver=qcow2,file.driver=file,file.filename={image}"];
        var (theirs, ours) = Side(dir, s => NbdProcess.Qemu(s, arguments), s => NbdProcess.Blk(s, arguments),
            server => NbdInfo.Run(server.Socket, "--json", server.Uri("disk")) + NbdInfo.Run(server.Socket, "--map", server.Uri("disk")));
        Assert.Equal(theirs.Replace("q.sock", "X"), ours.Replace("b.sock", "X"));
    }

    [Fact]
    public void Without_persistent_the_server_exits_when_its_first_negotiated_client_leaves_as_qemu_nbd_does()
    {
        using var dir = new TempDirectory();
        string image = MakeImage(dir, "a.qcow2");
        foreach (var start in new Func<string, NbdProcess>[] { s => NbdProcess.Qemu(s, "-f", "qcow2", image), s => NbdProcess.Blk(s, "-f", "qcow2", image) })
        {
            using var server = start(dir.File(Guid.NewGuid().ToString("N")[..8] + ".sock"));
            // A listing does not negotiate an export: the server stays.
            NbdInfo.Run(server.Socket, "--list", server.Uri());
            Assert.Equal("67108864\n", NbdInfo.Run(server.Socket, "--size", server.Uri()));
            Assert.Equal(0, server.WaitForExit());
            Assert.False(File.Exists(server.Socket));
        }
    }

    private static string QemuIoOver(NbdProcess server, params string[] commands)
    {
        var args = new List<string> { "-f", "raw" };
        foreach (var c in commands)
            args.AddRange(["-c", c]);
        args.Add(server.Uri("disk"));
        var r = ProcessRunner.Run(QemuIo.Path, args);
        return $"exit {r.ExitCode}\n{r.Stdout}\n{r.Stderr}".Replace(server.Socket, "SOCKET", StringComparison.Ordinal);
    }

    private static readonly string[] WriteSession =
    [
        "read -q -P 0x61 0 1M", "write -q -P 0x63 512k 64k", "write -q -z 2M 1M", "discard -q 0 4k", "flush",
        "write -q -P 0x64 63M 1M", "read -q -P 0x63 512k 64k", "read -q -P 0 2M 1M", "read -q 64M 512", "write -q 64M 512",
        "read -q -P 0x64 63M 1M",
    ];

    [Fact]
    public void Qemu_io_writes_through_blk_nbd_leave_the_image_qemu_nbd_leaves()
    {
        using var dir = new TempDirectory();
        string ours = MakeImage(dir, "ours.qcow2"), theirs = dir.File("theirs.qcow2");
        File.Copy(ours, theirs);
        string theirOutput, ourOutput;
        using (var q = NbdProcess.Qemu(dir.File("q.sock"), "-f", "qcow2", "-x", "disk", theirs))
            theirOutput = QemuIoOver(q, WriteSession);
        using (var b = NbdProcess.Blk(dir.File("b.sock"), "-f", "qcow2", "-x", "disk", ours))
        {
            ourOutput = QemuIoOver(b, WriteSession);
            Assert.Equal(0, b.WaitForExit());
        }
        Assert.Equal(theirOutput, ourOutput);
        Assert.Equal(0, QemuImg.Compare(ours, theirs, "qcow2", "qcow2"));
        Assert.Equal(0, QemuImg.Check(ours, "qcow2").ExitCode);
    }

    [Fact]
    public void Snapshot_mode_takes_writes_in_a_temporary_overlay_and_leaves_the_image_alone()
    {
        using var dir = new TempDirectory();
        string ours = MakeImage(dir, "ours.qcow2"), pristine = dir.File("pristine.qcow2"), theirs = dir.File("theirs.qcow2");
        File.Copy(ours, pristine);
        File.Copy(ours, theirs);
        string theirOutput, ourOutput;
        using (var q = NbdProcess.Qemu(dir.File("q.sock"), "-s", "-f", "qcow2", "-x", "disk", theirs))
            theirOutput = QemuIoOver(q, WriteSession);
        using (var b = NbdProcess.Blk(dir.File("b.sock"), "-s", "-f", "qcow2", "-x", "disk", ours))
        {
            ourOutput = QemuIoOver(b, WriteSession);
            Assert.Equal(0, b.WaitForExit());
        }
        Assert.Equal(theirOutput, ourOutput);
        Assert.Equal(0, QemuImg.Compare(ours, pristine, "qcow2", "qcow2"));
    }

    [Fact]
    public void Load_snapshot_exports_the_internal_snapshot_read_only_as_qemu_nbd_does()
    {
        using var dir = new TempDirectory();
        string image = MakeImage(dir, "a.qcow2");
        Assert.Equal(0, QemuImg.Run("snapshot", "-c", "snap1", image).ExitCode);
        QemuIo.RunChecked(image, "qcow2", "write -q -P 0x65 0 2M");
        string Read(NbdProcess server) =>
            NbdInfo.Run(server.Socket, "--json", server.Uri("disk")) + NbdInfo.Run(server.Socket, "--map", server.Uri("disk"))
            + QemuIoOver(server, "read -q -P 0x61 0 1M", "read -q -P 0 1M 1M", "write -q 0 4k");
        foreach (string snapshot in new[] { "snap1", "1", "snapshot.name=snap1", "snapshot.id=1" })
        {
            string[] arguments = ["-f", "qcow2", "-x", "disk", "-l", snapshot, "-t", image];
            var (theirs, ours) = Side(dir, s => NbdProcess.Qemu(s, arguments), s => NbdProcess.Blk(s, arguments), Read);
            Assert.Equal(theirs.Replace("q.sock", "X"), ours.Replace("b.sock", "X"));
        }
    }

    [Fact]
    public void Dirty_bitmap_contexts_of_blk_nbd_map_as_qemu_nbds()
    {
        using var dir = new TempDirectory();
        string image = MakeImage(dir, "a.qcow2");
        Assert.Equal(0, QemuImg.Run("bitmap", "--add", "-g", "65536", image, "b0").ExitCode);
        Assert.Equal(0, QemuImg.Run("bitmap", "--add", "--disable", image, "b1").ExitCode);
        QemuIo.RunChecked(image, "qcow2", "write -q -P 2 512k 64k", "write -q 10M 100k", "write -q -z 20M 4k");
        string[] arguments = ["-f", "qcow2", "-B", "b0", "-B", "b1", "-t", image];
        string Maps(NbdProcess server) =>
            NbdInfo.Run(server.Socket, "--json", server.Uri()) + NbdInfo.Run(server.Socket, "--map", server.Uri())
            + NbdInfo.Run(server.Socket, "--map=qemu:dirty-bitmap:b0", server.Uri())
            + NbdInfo.Run(server.Socket, "--map=qemu:dirty-bitmap:b1", server.Uri())
            + NbdInfo.Run(server.Socket, "--map=qemu:dirty-bitmap:b0", "--totals", server.Uri());
        var (theirs, ours) = Side(dir, s => NbdProcess.Qemu(s, arguments), s => NbdProcess.Blk(s, arguments), Maps);
        Assert.Equal(theirs.Replace("q.sock", "X"), ours.Replace("b.sock", "X"));
        Assert.Contains("qemu:dirty-bitmap:b1", ours, StringComparison.Ordinal);
    }

    [Fact]
    public void Fork_returns_once_the_server_listens_and_the_pid_file_names_it()
    {
        using var dir = new TempDirectory();
        string image = MakeImage(dir, "a.qcow2");
        string socket = dir.File("b.sock"), pidFile = dir.File("nbd.pid");
        var r = ProcessRunner.Run("dotnet", [typeof(Blk).Assembly.Location, "nbd", "--fork", "--pid-file", pidFile, "-k", socket, "-f", "qcow2", "-x", "disk", image],
            TimeSpan.FromSeconds(60));
        Assert.Equal(0, r.ExitCode);
        int pid = int.Parse(File.ReadAllText(pidFile).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        using var daemon = System.Diagnostics.Process.GetProcessById(pid);
        Assert.Equal("67108864\n", NbdInfo.Run(socket, "--size", $"nbd+unix:///disk?socket={socket}"));
        Assert.True(daemon.WaitForExit(TimeSpan.FromSeconds(60)), "the forked server did not exit after its client left");
        Assert.False(File.Exists(pidFile));
    }

    public static TheoryData<string> BadCommandLines => new()
    {
        "--cache=bogus IMAGE",
        "--aio=bogus IMAGE",
        "--discard=bogus IMAGE",
        "--detect-zeroes=bogus IMAGE",
        "--detect-zeroes=unmap -k SOCKET IMAGE",
        "-f raw --image-opts IMAGE",
        "",
        "IMAGE IMAGE",
        "--bogus",
        "-f qcow2 MISSING",
        "-B nope -k SOCKET IMAGE",
        "-l nosnap -k SOCKET IMAGE",
        "--tls-creds=x -k SOCKET IMAGE",
    };

    [Theory]
    [MemberData(nameof(BadCommandLines))]
    public void Command_line_errors_are_qemu_nbds(string line)
    {
        using var dir = new TempDirectory();
        string image = MakeImage(dir, "a.qcow2");
        string[] args = line.Split(' ', StringSplitOptions.RemoveEmptyEntries)
            .Select(a => a.Replace("IMAGE", image).Replace("SOCKET", dir.File("s.sock")).Replace("MISSING", dir.File("missing.qcow2"))).ToArray();
        var theirs = ProcessRunner.Run(QemuNbd.Path, args, TimeSpan.FromSeconds(60));
        var ours = BlkRunner.Run(["nbd", .. args]);
        Assert.Equal(theirs.ExitCode, ours.ExitCode);
        Assert.Equal(theirs.Stderr.Replace(QemuNbd.Path, "qemu-nbd").Replace("qemu-nbd: ", "blk: ").Replace("qemu-nbd", "blk nbd"), ours.Stderr);
    }
}
