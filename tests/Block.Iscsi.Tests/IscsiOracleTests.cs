using Block.TestSupport;

namespace Block.Iscsi.Tests;

/// <summary>blk and qemu-img (with Debian's qemu-block-extra) against the same tgt LUN: the same info, map, convert and compare.</summary>
public sealed class IscsiOracleTests : IDisposable
{
    private readonly TgtTarget _target = new();
    private readonly TempDirectory _dir = new();

    /// <summary>Data at 1 MiB (2 MiB), a 64 KiB run at 10 MiB, and a hole punched back into the first run.</summary>
    private void WriteSomeData()
    {
        QemuIo.RunChecked(_target.Url, "raw", "write -P 0x5a 1M 2M", "write -P 0xa5 10M 64k", "discard 1536k 512k", "write -P 0x11 40M 4k");
    }

    [Fact]
    public void Info_of_a_lun_matches_qemu_img()
    {
        var qemu = QemuImg.Run("info", _target.Url).EnsureSuccess("qemu-img info");
        var ours = BlkRunner.Run("info", _target.Url);
        Assert.Equal(qemu.Stdout, ours.Stdout);
        var qemuJson = QemuImg.Run("info", "--output=json", _target.Url).EnsureSuccess("qemu-img info");
        var oursJson = BlkRunner.Run("info", "--output=json", _target.Url);
        Assert.Equal(qemuJson.Stdout, oursJson.Stdout);
        Assert.Contains("\\\"driver\\\": \\\"iscsi\\\"", oursJson.Stdout);
    }

    [Fact]
    public void Info_from_image_opts_matches_qemu_img()
    {
        string opts = _target.ImageOpts("raw", ",file.timeout=10,file.header-digest=none");
        var qemu = QemuImg.Run("info", "--image-opts", opts).EnsureSuccess("qemu-img info");
        var ours = BlkRunner.Run("info", "--image-opts", opts);
        Assert.Equal(qemu.Stdout, ours.Stdout);
    }

    [Fact]
    public void Info_of_a_qcow2_image_on_a_lun_matches_qemu_img()
    {
        QemuImg.Run("create", "-f", "qcow2", _target.Url, "32M").EnsureSuccess("qemu-img create");
        QemuIo.RunChecked(_target.Url, "qcow2", "write -P 7 0 1M");
        var qemu = QemuImg.Run("info", _target.Url).EnsureSuccess("qemu-img info");
        var ours = BlkRunner.Run("info", _target.Url);
        Assert.Equal(qemu.Stdout, ours.Stdout);
        Assert.Contains("file format: qcow2", ours.Stdout);
    }

    [Fact]
    public void Map_uses_lba_status_as_qemu_img_does()
    {
        WriteSomeData();
        string qemuJson = QemuImg.MapJsonText(_target.Url);
        var ours = BlkRunner.Run("map", "--output=json", "-f", "raw", _target.Url);
        Assert.Equal(0, ours.ExitCode);
        Assert.Equal(qemuJson, ours.Stdout);
        // The punched hole and the unwritten space read as unallocated zeroes, the written runs as data.
        Assert.Contains("\"start\": 1048576, \"length\": 524288, \"depth\": 0, \"present\": true, \"zero\": false, \"data\": true", ours.Stdout);
        Assert.Contains("\"zero\": true, \"data\": false", ours.Stdout);
        Assert.Equal(QemuImg.MapHumanText(_target.Url), BlkRunner.Run("map", "-f", "raw", _target.Url).Stdout);
    }

    [Fact]
    public void Map_of_a_qcow2_image_on_a_lun_matches_qemu_img()
    {
        QemuImg.Run("create", "-f", "qcow2", _target.Url, "32M").EnsureSuccess("qemu-img create");
        QemuIo.RunChecked(_target.Url, "qcow2", "write -P 7 0 1M", "write -z 4M 1M", "write -P 9 9M 64k");
        Assert.Equal(QemuImg.MapJsonText(_target.Url, "qcow2"), BlkRunner.Run("map", "--output=json", "-f", "qcow2", _target.Url).Stdout);
    }

    [Fact]
    public void Convert_from_a_lun_gives_what_qemu_img_gives()
    {
        WriteSomeData();
        string theirs = _dir.File("theirs.qcow2"), ours = _dir.File("ours.qcow2");
        QemuImg.Run("convert", "-f", "raw", "-O", "qcow2", _target.Url, theirs).EnsureSuccess("qemu-img convert");
        var converted = BlkRunner.Run("convert", "-f", "raw", "-O", "qcow2", _target.Url, ours);
        Assert.True(converted.ExitCode == 0, converted.Stderr);
        Assert.Equal(0, QemuImg.Check(ours, "qcow2").ExitCode);
        Assert.Equal(0, QemuImg.Compare(theirs, ours, "qcow2", "qcow2"));
        Assert.Equal(QemuImg.MapJsonText(theirs, "qcow2"), QemuImg.MapJsonText(ours, "qcow2"));
        Assert.Equal(File.ReadAllBytes(_target.LunPath), ReadRaw(ours));
    }

    [Fact]
    public void Convert_onto_a_lun_is_identical_for_qemu_img_compare()
    {
        string source = _dir.File("source.qcow2");
        QemuImg.Create("qcow2", source, "64M");
        QemuIo.RunChecked(source, "qcow2", "write -P 0x77 1M 3M", "write -P 0x99 20M 64k", "write -P 0x42 63M 1M");
        // Stale bytes on the LUN where the source is zero: the copy must clear them.
        QemuIo.RunChecked(_target.Url, "raw", "write -P 0xee 30M 1M");

        var converted = BlkRunner.Run("convert", "-n", "-f", "qcow2", "-O", "raw", source, _target.Url);
        Assert.True(converted.ExitCode == 0, converted.Stderr);
        var qemu = QemuImg.Run("compare", "-f", "qcow2", "-F", "raw", source, _target.Url);
        Assert.Equal(0, qemu.ExitCode);
        var ours = BlkRunner.Run("compare", "-f", "qcow2", "-F", "raw", source, _target.Url);
        Assert.Equal(BlkRunner.Normalize(qemu.Stdout), ours.Stdout);

        // Without -n, "creating" the LUN checks that it is large enough, as qemu-img does.
        var created = BlkRunner.Run("convert", "-f", "qcow2", "-O", "raw", source, _target.Url);
        Assert.True(created.ExitCode == 0, created.Stderr);
        Assert.Equal(0, QemuImg.Compare(source, _target.Url, "qcow2", "raw"));
    }

    [Fact]
    public void Compare_reports_the_first_difference_as_qemu_img_does()
    {
        WriteSomeData();
        string copy = _dir.File("copy.raw");
        File.Copy(_target.LunPath, copy);
        var same = BlkRunner.Run("compare", "-f", "raw", "-F", "raw", _target.Url, copy);
        Assert.Equal(0, same.ExitCode);
        QemuIo.RunChecked(copy, "raw", "write -P 0x3 2000k 512");
        var qemu = QemuImg.Run("compare", "-f", "raw", "-F", "raw", _target.Url, copy);
        var ours = BlkRunner.Run("compare", "-f", "raw", "-F", "raw", _target.Url, copy);
        Assert.Equal(1, qemu.ExitCode);
        Assert.Equal(qemu.ExitCode, ours.ExitCode);
        Assert.Equal(BlkRunner.Normalize(qemu.Stdout), ours.Stdout);
    }

    [Fact]
    public void Creating_on_a_lun_smaller_than_asked_fails_as_in_qemu()
    {
        var qemu = QemuImg.Run("create", "-f", "raw", _target.Url, "1G");
        var ours = BlkRunner.Run("create", "-f", "raw", _target.Url, "1G");
        Assert.NotEqual(0, qemu.ExitCode);
        Assert.NotEqual(0, ours.ExitCode);
        Assert.Contains("Device too small", ours.Stderr);
    }

    private static byte[] ReadRaw(string qcow2)
    {
        string raw = qcow2 + ".raw";
        QemuImg.Run("convert", "-f", "qcow2", "-O", "raw", qcow2, raw).EnsureSuccess("qemu-img convert");
        return File.ReadAllBytes(raw);
    }

    public void Dispose()
    {
        _target.Dispose();
        _dir.Dispose();
    }
}
