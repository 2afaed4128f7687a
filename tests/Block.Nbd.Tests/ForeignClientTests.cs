using Block.TestSupport;

namespace Block.Nbd.Tests;

/// <summary>Clients we did not write against our server: libnbd's <c>nbdcopy</c> and fio's <c>nbd</c> engine.</summary>
public sealed class ForeignClientTests
{
    private const string Export = "disk";

    private static string Uri(string socket) => $"nbd+unix:///{Export}?socket={socket}";

    [Fact]
    public async Task Nbdcopy_into_our_server_leaves_the_image_equal_to_the_source_and_copies_it_back_out()
    {
        using var dir = new TempDirectory();
        string source = dir.File("src.raw");
        QemuImg.Create("raw", source, "16M");
        QemuIo.RunChecked(source, "raw", "write -q -P 0x5a 0 3M", "write -q -P 0xa5 5M 64k", "write -q -P 0x11 15M 1M");
        string image = dir.File("img.qcow2");
        QemuImg.Create("qcow2", image, "16M");
        QemuIo.RunChecked(image, "qcow2", "write -q -P 0x77 8M 2M"); // data nbdcopy must overwrite with zeroes
        await using (var server = await NbdTestServer.StartAsync(dir.File("s.sock"), image, "qcow2", Export))
        {
            ProcessRunner.Run("nbdcopy", [source, Uri(server.Socket)], TimeSpan.FromSeconds(120)).EnsureSuccess("nbdcopy into the server");
            ProcessRunner.Run("nbdcopy", [Uri(server.Socket), dir.File("out.raw")], TimeSpan.FromSeconds(120)).EnsureSuccess("nbdcopy out of the server");
        }
        Assert.Equal(0, QemuImg.Compare(source, image, "raw", "qcow2"));
        Assert.Equal(File.ReadAllBytes(source), File.ReadAllBytes(dir.File("out.raw")));
        Assert.Equal(0, QemuImg.Check(image, "qcow2").ExitCode);
    }

    [Fact]
    public async Task Fio_nbd_engine_writes_and_verifies_at_depth_16_and_qemu_nbd_then_reads_the_same_data_from_the_image()
    {
        using var dir = new TempDirectory();
        string image = dir.File("img.qcow2");
        QemuImg.Create("qcow2", image, "16M");
        string[] Job(string socket) => ["--name=verify", "--ioengine=nbd", $"--uri={Uri(socket)}", "--rw=randwrite", "--bs=4k",
            "--iodepth=16", "--size=8M", "--verify=crc32c", "--do_verify=1", "--verify_fatal=1", "--randseed=7", "--output-format=terse"];
        await using (var server = await NbdTestServer.StartAsync(dir.File("s.sock"), image, "qcow2", Export))
            ProcessRunner.Run("fio", Job(server.Socket), TimeSpan.FromSeconds(180)).EnsureSuccess("fio write and verify against our server");
        // The same job's blocks, checked by fio through qemu-nbd from the image our server left.
        using (QemuNbd.Start(dir.File("q.sock"), image, "-f", "qcow2", "-x", Export))
        {
            var check = ProcessRunner.Run("fio", [.. Job(dir.File("q.sock")), "--verify_only=1"], TimeSpan.FromSeconds(180));
            check.EnsureSuccess("fio verify through qemu-nbd");
            Assert.DoesNotContain("bad magic", check.Stderr);
        }
        Assert.Equal(0, QemuImg.Check(image, "qcow2").ExitCode);
    }
}
