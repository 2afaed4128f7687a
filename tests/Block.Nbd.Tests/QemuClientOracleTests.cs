using Block.Nbd.Server;
using Block.TestSupport;

namespace Block.Nbd.Tests;

/// <summary>
/// QEMU's own NBD client (qemu-io, qemu-img) runs the same session against our server and against qemu-nbd, each
/// serving a copy of one image; the answers and the images afterwards must be the same.
/// </summary>
public sealed class QemuClientOracleTests
{
    private const string Export = "disk";

    private static string MakeImage(TempDirectory dir, string name)
    {
        string path = dir.File(name);
        QemuImg.Create("qcow2", path, "64M");
        QemuIo.RunChecked(path, "qcow2", "write -q -P 0x11 0 1M", "write -q -P 0x22 4M 64k", "write -q -z 8M 1M", "write -q -P 0x33 63M 1M");
        return path;
    }

    private static (string Ours, string Theirs, string OursImage, string TheirsImage) Copies(TempDirectory dir)
    {
        string ours = MakeImage(dir, "ours.qcow2");
        string theirs = dir.File("theirs.qcow2");
        File.Copy(ours, theirs);
        return (dir.File("ours.sock"), dir.File("theirs.sock"), ours, theirs);
    }

    private static string Normalize(string text, string socket) => text.Replace(socket, "SOCKET", StringComparison.Ordinal);

    private static string QemuIoOver(string socket, params string[] commands)
    {
        var args = new List<string> { "-f", "raw" };
        foreach (var c in commands)
        {
            args.Add("-c");
            args.Add(c);
        }
        args.Add(QemuNbd.Uri(socket, Export));
        var r = ProcessRunner.Run(QemuIo.Path, args);
        return Normalize($"exit {r.ExitCode}\n{r.Stdout}\n{r.Stderr}", socket);
    }

    [Fact]
    public async Task Qemu_io_session_gives_qemu_nbds_answers_and_leaves_the_same_image()
    {
        using var dir = new TempDirectory();
        var (ours, theirs, oursImage, theirsImage) = Copies(dir);
        string[] session =
        [
            "read -q -P 0x11 0 1M", "read -q -P 0x22 4M 64k", "read -q -P 0 8M 1M", "read -q -P 0x33 63M 1M",
            "write -q -P 0x44 2M 128k", "write -q -f -P 0x45 2M 4k", "write -q -z 4M 4k", "write -q -z -u 1M 64k",
            "discard -q 5M 64k", "flush", "read -q -P 0x45 2M 4k", "read -q -P 0x44 2052k 124k", "read -q -P 0 4M 4k",
            "read -q 64M 512", "read -q 63M 2M", "write -q 63M 2M", "write -q -z 63M 2M", "discard -q 63M 2M",
            "read -q -v 2M 32", "readv -q -P 0x44 2M 4k 4k", "aio_write -q -P 0x46 3M 64k", "aio_flush", "read -q -P 0x46 3M 64k",
        ];
        string oursOut, theirsOut;
        await using (var server = await NbdTestServer.StartAsync(ours, oursImage, "qcow2", Export))
            oursOut = await Task.Run(() => QemuIoOver(ours, session));
        using (QemuNbd.Start(theirs, theirsImage, "-f", "qcow2", "-x", Export))
            theirsOut = QemuIoOver(theirs, session);

        Assert.Equal(theirsOut, oursOut);
        Assert.Equal(0, QemuImg.Compare(oursImage, theirsImage, "qcow2", "qcow2"));
        QemuImg.Check(oursImage, "qcow2").EnsureSuccess("qemu-img check");
    }

    [Fact]
    public async Task Qemu_img_map_over_our_server_matches_qemu_nbds()
    {
        using var dir = new TempDirectory();
        var (ours, theirs, oursImage, theirsImage) = Copies(dir);
        string Map(string socket) => Normalize(QemuImg.Run("map", "--output=json", "-f", "raw", QemuNbd.Uri(socket, Export)).EnsureSuccess("qemu-img map").Stdout, socket);
        string oursMap, theirsMap;
        await using (var server = await NbdTestServer.StartAsync(ours, oursImage, "qcow2", Export))
            oursMap = await Task.Run(() => Map(ours));
        using (QemuNbd.Start(theirs, theirsImage, "-f", "qcow2", "-x", Export))
            theirsMap = Map(theirs);
        Assert.Equal(theirsMap, oursMap);
    }

    [Fact]
    public async Task Qemu_img_convert_and_compare_over_our_server_see_the_image()
    {
        using var dir = new TempDirectory();
        var (ours, _, oursImage, _) = Copies(dir);
        string target = dir.File("copy.raw");
        await using var server = await NbdTestServer.StartAsync(ours, oursImage, "qcow2", Export, writable: false);
        var convert = await Task.Run(() => QemuImg.Run("convert", "-f", "raw", "-O", "raw", QemuNbd.Uri(ours, Export), target));
        convert.EnsureSuccess("qemu-img convert");
        var compare = await Task.Run(() => QemuImg.Run("compare", "-f", "raw", "-F", "qcow2", QemuNbd.Uri(ours, Export), oursImage));
        Assert.Equal(0, compare.ExitCode);
        Assert.Equal(0, QemuImg.Compare(target, oursImage, "raw", "qcow2"));
    }

    [Fact]
    public async Task Read_only_export_refuses_writes_as_qemu_nbd_r_does()
    {
        using var dir = new TempDirectory();
        var (ours, theirs, oursImage, theirsImage) = Copies(dir);
        string[] session = ["read -q -P 0x11 0 64k", "write -q -P 0x55 0 64k", "write -q -z 0 64k", "discard -q 0 64k", "flush", "read -q -P 0x11 0 64k"];
        string oursOut, theirsOut;
        await using (var server = await NbdTestServer.StartAsync(ours, oursImage, "qcow2", Export, writable: false))
            oursOut = await Task.Run(() => QemuIoOver(ours, session));
        using (QemuNbd.Start(theirs, theirsImage, "-f", "qcow2", "-x", Export, "-r"))
            theirsOut = QemuIoOver(theirs, session);
        Assert.Equal(theirsOut, oursOut);
    }

    [Fact]
    public async Task Qemu_nbd_list_shows_our_exports_as_it_shows_its_own()
    {
        using var dir = new TempDirectory();
        var (ours, theirs, oursImage, theirsImage) = Copies(dir);
        string List(string socket) => Normalize(ProcessRunner.Run(QemuNbd.Path, ["--list", "-k", socket]).EnsureSuccess("qemu-nbd --list").Stdout, socket);
        string oursOut, theirsOut;
        // One client at a time, as qemu-nbd's default -e 1: multi-conn is advertised only when more may connect.
        await using (var server = await NbdTestServer.StartAsync(ours, oursImage, "qcow2", Export, description: "a test disk",
            options: new NbdServerOptions { MaxConnections = 1 }))
            oursOut = await Task.Run(() => List(ours));
        using (QemuNbd.Start(theirs, theirsImage, "-f", "qcow2", "-x", Export, "-D", "a test disk"))
            theirsOut = List(theirs);
        Assert.Equal(theirsOut, oursOut);
    }
}
