using Block.TestSupport;

namespace Block.Cli.Tests;

/// <summary>
/// <c>blk info</c> and <c>blk io</c> on a <c>host_cdrom</c> against qemu-img and qemu-io 7.2 on the same device. With no
/// CD-ROM drive on the machine, <c>/dev/zero</c> (a character device that answers no CD-ROM ioctl) stands for a drive
/// with no disc.
/// </summary>
public sealed class HostCdromOracleTests
{
    [Theory]
    [InlineData("driver=host_cdrom,filename=/dev/zero")]
    [InlineData("driver=raw,file.driver=host_cdrom,file.filename=/dev/zero")]
    public void Info_of_a_drive_without_a_disc_is_qemu_imgs(string options)
    {
        var ours = BlkRunner.Run("info", "--output=json", "--image-opts", options);
        var theirs = QemuImg.Run("info", "--output=json", "--image-opts", options);
        Assert.Equal((theirs.ExitCode, theirs.Stdout), (ours.ExitCode, ours.Stdout));
    }

    [Fact]
    public void Reads_and_writes_of_a_drive_without_a_disc_fail_as_qemu_ios_do()
    {
        string[] commands = ["-c", "read 0 512", "-c", "write 0 512", "-c", "read 0 0"];
        var ours = BlkRunner.Run(["io", "--image-opts", "driver=raw,file.driver=host_cdrom,file.filename=/dev/zero", .. commands]);
        var theirs = ProcessRunner.Run(QemuIo.Path, ["--image-opts", "driver=raw,file.driver=host_cdrom,file.filename=/dev/zero", .. commands]);
        Assert.Contains("read failed: No medium found", theirs.Stdout + theirs.Stderr);
        Assert.Equal((theirs.ExitCode, theirs.Stdout, theirs.Stderr), (ours.ExitCode, ours.Stdout, ours.Stderr));
    }

    [Fact]
    public void A_regular_file_is_refused_as_qemu_img_refuses_it()
    {
        using var dir = new TempDirectory();
        string path = dir.File("cd.iso");
        QemuImg.Create("raw", path, "1M");
        var ours = BlkRunner.Run("info", "--image-opts", $"driver=host_cdrom,filename={path}");
        var theirs = QemuImg.Run("info", "--image-opts", $"driver=host_cdrom,filename={path}");
        Assert.Equal(1, ours.ExitCode);
        Assert.Equal(theirs.ExitCode, ours.ExitCode);
        Assert.Equal(theirs.Stderr.Replace("qemu-img:", "blk:", StringComparison.Ordinal), ours.Stderr);
    }
}
