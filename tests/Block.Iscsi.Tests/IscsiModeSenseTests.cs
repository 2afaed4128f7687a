using Block.Iscsi.Session;
using Block.TestSupport;

namespace Block.Iscsi.Tests;

/// <summary>MODE SENSE at open, as QEMU reads it: the WP bit refuses a read-write open, DPOFUA enables FUA.</summary>
public sealed class IscsiModeSenseTests : IDisposable
{
    private readonly TgtTarget _target = new(size: 8L << 20);

    [Fact]
    public void A_write_protected_lun_refuses_writes_with_qemus_message_and_still_reads()
    {
        QemuIo.RunChecked(_target.Url, "raw", "write -P 0x3c 0 64k");
        _target.SetReadOnly();

        var theirs = QemuIo.Run(_target.Url, "raw", "write -P 0x11 0 512");
        var ours = BlkRunner.Run("io", "-f", "raw", "-c", "write -P 0x11 0 512", _target.Url);
        Assert.NotEqual(0, theirs.ExitCode);
        Assert.Contains("LUN is write protected", theirs.Stderr, StringComparison.Ordinal);
        Assert.Equal(theirs.ExitCode, ours.ExitCode);
        Assert.Equal(BlkRunner.Normalize(theirs.Stderr), ours.Stderr);

        // A read-only open goes on, and the data is unchanged.
        Assert.Equal(QemuImg.Run("info", _target.Url).EnsureSuccess("qemu-img info").Stdout, BlkRunner.Run("info", _target.Url).Stdout);
        var read = BlkRunner.Run("io", "-r", "-f", "raw", "-c", "read -P 0x3c 0 64k", _target.Url);
        Assert.True(read.ExitCode == 0 && !read.Stdout.Contains("Pattern verification failed", StringComparison.Ordinal), read.Stdout + read.Stderr);
    }

    [Theory]
    [InlineData(new byte[] { 0x0b, 0x00, 0x80, 0x00 }, true, false)]
    [InlineData(new byte[] { 0x0b, 0x00, 0x10, 0x00 }, false, true)]
    [InlineData(new byte[] { 0x0b, 0x00, 0x90, 0x08 }, true, true)]
    [InlineData(new byte[] { 0x0b, 0x00, 0x6f, 0x00 }, false, false)]
    [InlineData(new byte[] { 0x0b, 0x00, 0x90 }, false, false)]
    public void The_mode_parameter_header_gives_wp_and_dpofua(byte[] header, bool writeProtected, bool dpoFua)
    {
        var info = new IscsiLunInfo { BlockSize = 512, Blocks = 1 };
        info.ApplyModeSense6(header);
        Assert.Equal(writeProtected, info.WriteProtected);
        Assert.Equal(dpoFua, info.DpoFua);
    }

    public void Dispose() => _target.Dispose();
}
