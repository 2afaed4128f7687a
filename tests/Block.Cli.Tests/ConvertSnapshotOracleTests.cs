using Block.TestSupport;

namespace Block.Cli.Tests;

/// <summary><c>blk convert -l</c> copies an internal snapshot, chosen and refused as <c>qemu-img convert -l</c> does.</summary>
public class ConvertSnapshotOracleTests
{
    /// <summary>An image with two snapshots of different content and size, and other content in the active state.</summary>
    private static SideBySide Prepared()
    {
        var s = new SideBySide();
        s.InBoth(dir =>
        {
            string image = dir.File("s.qcow2");
            QemuImg.Create("qcow2", image, "1M");
            QemuIo.Run(image, "qcow2", "write -P 1 0 64k").EnsureSuccess("qemu-io");
            QemuImg.Run("snapshot", "-c", "snap1", image).EnsureSuccess("snapshot");
            QemuImg.Run("resize", image, "2M").EnsureSuccess("resize");
            QemuIo.Run(image, "qcow2", "write -P 2 1M 64k").EnsureSuccess("qemu-io");
            // A snapshot whose name is the other one's id: an id is tried first.
            QemuImg.Run("snapshot", "-c", "1", image).EnsureSuccess("snapshot");
            QemuIo.Run(image, "qcow2", "write -P 3 0 128k").EnsureSuccess("qemu-io");
            QemuImg.Create("raw", dir.File("r.raw"), "1M");
        });
        return s;
    }

    [Theory]
    [InlineData("snap1")]
    [InlineData("1")]
    [InlineData("2")]
    [InlineData("snapshot.name=snap1")]
    [InlineData("snapshot.name=1")]
    [InlineData("snapshot.id=2")]
    [InlineData("snapshot.id=1,snapshot.name=snap1")]
    public void A_snapshot_is_copied_as_qemu_img_copies_it(string snapshot)
    {
        using var s = Prepared();
        s.AssertSameImg("convert", "-O", "raw", "-l", snapshot, "@s.qcow2", "@out.raw");
        s.AssertSameBytes("out.raw");
    }

    [Theory]
    [InlineData("-l", "nosuch", "@s.qcow2")]
    [InlineData("-l", "snapshot.id=9", "@s.qcow2")]
    [InlineData("-l", "snapshot.id=1,snapshot.name=x", "@s.qcow2")]
    [InlineData("-l", "snapshot.foo=1", "@s.qcow2")]
    [InlineData("-l", "snap1", "@s.qcow2", "@s.qcow2")]
    [InlineData("-l", "snap1", "-f", "raw", "@r.raw")]
    public void Snapshots_that_cannot_be_loaded_are_refused_as_qemu_img_refuses_them(params string[] args)
    {
        using var s = Prepared();
        s.AssertSameImg(["convert", "-O", "raw", .. args, "@out.raw"]);
        s.AssertSameBytes("out.raw");
    }
}
