using Block.TestSupport;

namespace Block.Cli.Tests.Nbd;

/// <summary>QEMU's NBD file names and options, good and bad: blk opens what qemu-img opens and fails as it fails.</summary>
public sealed class NbdFilenameOracleTests
{
    [Theory]
    [InlineData("nbd:")]
    [InlineData("nbd:foo")]
    [InlineData("nbd:foo:bar")]
    [InlineData("nbd:127.0.0.1:10809:exportname=")]
    [InlineData("nbd:127.0.0.1:10809x:exportname=disk")]
    [InlineData("nbd://")]
    [InlineData("nbd:///disk")]
    [InlineData("nbd://127.0.0.1:99999/disk")]
    [InlineData("nbd://127.0.0.1:abc/disk")]
    [InlineData("nbd://127.0.0.1/disk?x=1")]
    [InlineData("nbd+unix:///disk")]
    [InlineData("nbd+unix:///disk?socket=/a&x=1")]
    [InlineData("nbd+unix://host/disk?socket=@srv.sock")]
    [InlineData("nbd+unix:///disk?socket=@nosock")]
    [InlineData("nbd:unix:@nosock:exportname=disk")]
    [InlineData("nbd://127.0.0.1:1/disk")]
    [InlineData("nbd+tcp://[::1]:1")]
    [InlineData("nbd:[::1]:1:exportname=x")]
    [InlineData("json:{\"driver\":\"nbd\"}")]
    [InlineData("json:{\"file\":{\"driver\":\"nbd\",\"host\":\"h\",\"path\":\"/p\"}}")]
    [InlineData("json:{\"file\":{\"driver\":\"nbd\",\"port\":\"1\"}}")]
    [InlineData("json:{\"file\":{\"driver\":\"nbd\",\"filename\":\"nbd://127.0.0.1:1/disk\",\"export\":\"x\"}}")]
    [InlineData("json:{\"file\":{\"driver\":\"nbd\",\"server\":{\"type\":\"unix\",\"path\":\"@srv.sock\"},\"tls-creds\":\"x\"}}")]
    [InlineData("json:{\"file\":{\"driver\":\"nbd\",\"server\":{\"type\":\"inet\",\"host\":\"127.0.0.1\",\"port\":\"1\"}}}")]
    public void A_bad_nbd_address_fails_with_qemu_imgs_message(string filename)
    {
        using var s = new SideBySide();
        s.AssertSameImg("info", filename);
    }

    [Theory]
    [InlineData("nbd+unix:///disk?socket=@srv.sock")]
    [InlineData("nbd+unix:///disk?socket=@srv%2esock")]
    [InlineData("nbd:unix:@srv.sock:exportname=disk")]
    [InlineData("nbd+unix:///nosuch?socket=@srv.sock")]
    [InlineData("nbd+unix://?socket=@srv.sock")]
    [InlineData("nbd+unix:////disk?socket=@srv.sock")]
    [InlineData("json:{\"driver\":\"nbd\",\"server\":{\"type\":\"unix\",\"path\":\"@srv.sock\"},\"export\":\"disk\"}")]
    [InlineData("json:{\"file\":{\"driver\":\"nbd\",\"path\":\"@srv.sock\",\"export\":\"disk\"}}")]
    [InlineData("driver=nbd,server.type=unix,server.path=@srv.sock,export=disk")]
    public void Every_spelling_of_a_unix_address_reaches_the_export_as_qemu_img_reaches_it(string filename)
    {
        using var s = new SideBySide();
        s.InBoth(d => QemuImg.Create("raw", d.File("img.raw"), "1M"));
        using var q = QemuNbd.Start(s.Qemu("srv.sock"), s.Qemu("img.raw"), "-f", "raw", "-x", "disk");
        using var b = QemuNbd.Start(s.Blk("srv.sock"), s.Blk("img.raw"), "-f", "raw", "-x", "disk");
        if (filename.StartsWith("driver=", StringComparison.Ordinal))
            s.AssertSameImg("info", "--image-opts", filename);
        else
            s.AssertSameImg("info", filename);
    }
}
