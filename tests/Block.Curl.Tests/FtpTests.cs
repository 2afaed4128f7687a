using Block.TestSupport;

namespace Block.Curl.Tests;

/// <summary>ftp and ftps from vsftpd: ftp against qemu-img on the same URL, ftps against the source bytes.</summary>
public sealed class FtpTests : IDisposable
{
    private readonly TempDirectory _dir = new();

    [Fact]
    public void Ftp_info_convert_and_reads_match_qemu_img()
    {
        using var ftp = Vsftpd.Start(_dir.Path, tls: false);
        var raw = CurlTestImages.Write(ftp.Root);
        string url = ftp.Url("disk.qcow2");

        Assert.Equal(QemuImg.Run("info", url).EnsureSuccess("qemu-img info").Stdout, BlkRunner.Run("info", url).Stdout);
        string qemuOut = _dir.File("qemu.raw"), ourOut = _dir.File("ours.raw");
        QemuImg.Run("convert", "-m", "1", "-O", "raw", url, qemuOut).EnsureSuccess("qemu-img convert");
        Assert.Equal(0, BlkRunner.Run("convert", "-O", "raw", url, ourOut).ExitCode);
        Assert.Equal(raw, File.ReadAllBytes(qemuOut));
        Assert.Equal(raw, File.ReadAllBytes(ourOut));

        string[] reads = ["-c", "read -v 1 31", "-c", "read -v 4194272 32", "-c", "read 1M 2M"];
        var qemu = ProcessRunner.Run(QemuIo.Path, ["-r", "-f", "raw", .. reads, ftp.Url("disk.raw")]);
        var ours = BlkRunner.Run(["io", "-r", "-f", "raw", .. reads, ftp.Url("disk.raw")]);
        Assert.Equal(BlkRunner.Normalize(qemu.Stdout), BlkRunner.Normalize(ours.Stdout));
    }

    [Fact]
    public void Ftps_converts_to_the_source_bytes()
    {
        using var ftps = Vsftpd.Start(_dir.Path, tls: true);
        var raw = CurlTestImages.Write(ftps.Root);
        string name = "json:{\"driver\":\"qcow2\",\"file\":{\"driver\":\"ftps\",\"url\":\"" + ftps.Url("disk.qcow2") + "\",\"sslverify\":false}}";
        string ourOut = _dir.File("ours.raw");
        var result = BlkRunner.Run("convert", "-O", "raw", name, ourOut);
        Assert.True(result.ExitCode == 0, result.Stderr);
        Assert.Equal(raw, File.ReadAllBytes(ourOut));
    }

    [Fact]
    public void Ftp_size_of_a_missing_file_is_an_open_error()
    {
        using var ftp = Vsftpd.Start(_dir.Path, tls: false);
        var ours = BlkRunner.Run("info", ftp.Url("nope.raw"));
        Assert.NotEqual(0, ours.ExitCode);
        Assert.StartsWith($"blk: Could not open '{ftp.Url("nope.raw")}': CURL: Error opening file: ", ours.Stderr);
    }

    public void Dispose() => _dir.Dispose();
}
