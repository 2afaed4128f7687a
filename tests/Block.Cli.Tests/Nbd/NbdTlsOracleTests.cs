using System.Net;
using System.Net.Sockets;
using Block.TestSupport;

namespace Block.Cli.Tests.Nbd;

/// <summary>
/// The nbd client over TLS against <c>qemu-nbd --tls-creds</c> with certificates made by certtool in the test: blk
/// connects where qemu-img connects, sends its client certificate, checks the server's name and CA, and fails where
/// qemu-img fails, with its message.
/// </summary>
public sealed class NbdTlsOracleTests
{
    private static string Object(string dir, string endpoint = "client") => $"tls-creds-x509,id=tls0,dir={dir},endpoint={endpoint}";

    private static string Unix(string socket, string extra = "") =>
        $"driver=nbd,server.type=unix,server.path={socket},export=disk,tls-creds=tls0{extra}";

    private static QemuNbd Serve(TempDirectory dir, TlsCertificates certs, params string[] address)
    {
        QemuImg.Create("qcow2", dir.File("img.qcow2"), "16M");
        QemuIo.RunChecked(dir.File("img.qcow2"), "qcow2", "write -q -P 0x11 0 1M");
        return QemuNbd.Start(dir.File("s.sock"), dir.File("img.qcow2"), ["-f", "qcow2", "-x", "disk", "--object",
            Object(certs.ServerDirectory, "server") + ",verify-peer=on", "--tls-creds", "tls0", .. address]);
    }

    [Fact]
    public void Blk_opens_qemu_nbds_tls_export_where_qemu_img_does_and_fails_where_it_fails()
    {
        using var dir = new TempDirectory();
        var certs = TlsCertificates.Create(dir.File("pki"));
        using var server = Serve(dir, certs);
        using var s = new SideBySide();
        string socket = dir.File("s.sock");
        s.AssertSameImg("info", "--object", Object(certs.ClientDirectory), "--image-opts", Unix(socket, ",tls-hostname=localhost"));
        s.AssertSameImg("info", "--object", Object(certs.ClientDirectory), "--image-opts", Unix(socket));
        s.AssertSameImg("map", "--output=json", "--object", Object(certs.ClientDirectory), "--image-opts", Unix(socket, ",tls-hostname=localhost"));
        s.AssertSameImg("info", QemuNbd.Uri(socket, "disk"));
        s.AssertSameImg("info", "--object", Object(certs.ClientDirectory), "--image-opts", Unix(socket, ",tls-hostname=other"));
        // The server drops a client without a certificate. Where the client notices depends on timing: QEMU says so on
        // reading the first option reply (GnuTLS's errno then is ECONNABORTED or EIO) or, about one time in seven on a
        // loaded machine, on writing the option before it; both are the same refusal.
        var noCertificate = s.Img("info", "--object", Object(certs.CaOnlyDirectory), "--image-opts", Unix(socket, ",tls-hostname=localhost"));
        Assert.Equal((1, 1), (noCertificate.Qemu.ExitCode, noCertificate.Blk.ExitCode));
        Assert.True(IsTlsRefusal(noCertificate.Qemu.Stderr), noCertificate.Qemu.Stderr);
        Assert.True(IsTlsRefusal(noCertificate.Blk.Stderr), noCertificate.Blk.Stderr);
        s.AssertSameImg("info", "--object", Object(certs.OtherCaDirectory), "--image-opts", Unix(socket, ",tls-hostname=localhost"));
        s.AssertSameImg("info", "--object", Object(certs.ClientDirectory, "server"), "--image-opts", Unix(socket));
        s.AssertSameImg("info", "--object", Object(dir.File("missing")), "--image-opts", Unix(socket));
        s.AssertSameImg("info", "--image-opts", Unix(socket));
    }

    private static bool IsTlsRefusal(string stderr) =>
        stderr.Contains("Failed to read option reply: Cannot read from TLS channel: ", StringComparison.Ordinal)
        || stderr.Contains("Failed to send option request header: Cannot write to TLS channel: ", StringComparison.Ordinal);

    [Fact]
    public void Data_written_by_blk_io_over_tls_reads_back_through_qemu_io_over_tls()
    {
        using var dir = new TempDirectory();
        var certs = TlsCertificates.Create(dir.File("pki"));
        using var server = Serve(dir, certs);
        string options = Unix(dir.File("s.sock"), ",tls-hostname=localhost");
        var write = BlkRunner.Run("io", "--object", Object(certs.ClientDirectory), "--image-opts",
            "-c", "write -q -P 0x5c 1M 2M", "-c", "write -q -z 0 4k", "-c", "flush", options);
        Assert.Equal(0, write.ExitCode);
        var read = ProcessRunner.Run(QemuIo.Path, ["--object", Object(certs.ClientDirectory), "--image-opts",
            "-c", "read -q -P 0x5c 1M 2M", "-c", "read -q -P 0 0 4k", "-c", "read -q -P 0x11 4k 1020k", options]);
        Assert.Equal((0, string.Empty), (read.ExitCode, read.Stdout + read.Stderr));
    }

    [Fact]
    public void Over_tcp_the_server_name_checked_is_the_inet_host()
    {
        using var dir = new TempDirectory();
        var certs = TlsCertificates.Create(dir.File("pki"));
        int port = FreePort();
        using var server = Serve(dir, certs, "-b", "127.0.0.1", "-p", port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        using var s = new SideBySide();
        string inet = $"driver=nbd,server.type=inet,server.host=127.0.0.1,server.port={port},export=disk,tls-creds=tls0";
        s.AssertSameImg("info", "--object", Object(certs.ClientDirectory), "--image-opts", inet);
        s.AssertSameImg("info", "--object", Object(certs.ClientDirectory), "--image-opts", inet + ",tls-hostname=example.org");
    }

    private static int FreePort()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }
}
