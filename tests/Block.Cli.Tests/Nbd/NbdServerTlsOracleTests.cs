using System.Text.Json.Nodes;
using Block.Cli.Tests.Serve;
using Block.TestSupport;

namespace Block.Cli.Tests.Nbd;

/// <summary>
/// Our NBD server with <c>tls-creds</c> (<c>blk nbd --tls-creds</c>, <c>blk serve --nbd-server …,tls-creds=</c>,
/// QMP <c>nbd-server-start</c>) side by side with qemu-nbd and qemu-storage-daemon 7.2 given the same certtool-made
/// credentials, with qemu-img, qemu-io and nbdinfo as the TLS clients.
/// </summary>
public sealed class NbdServerTlsOracleTests
{
    private static string Object(string dir, string endpoint, string id = "tls0") => $"tls-creds-x509,id={id},dir={dir},endpoint={endpoint}";

    private static string ImageOpts(string socket, string extra = ",tls-creds=tls0,tls-hostname=localhost") =>
        $"driver=nbd,server.type=unix,server.path={socket},export=disk{extra}";

    private static string Run(string socket, string program, params string[] args)
    {
        var r = ProcessRunner.Run(program, args, TimeSpan.FromSeconds(60));
        return $"exit {r.ExitCode}\n{r.Stdout}\n{r.Stderr}".Replace(socket, "SOCKET", StringComparison.Ordinal);
    }

    private static string Nbdinfo => ProcessRunner.Which("nbdinfo")
        ?? throw new InvalidOperationException("nbdinfo is not installed: these tests need Debian's libnbd-bin (run ./test.sh, which installs it)");

    [Fact]
    public void Tls_clients_see_blk_nbd_as_they_see_qemu_nbd_and_plain_clients_are_refused_alike()
    {
        using var dir = new TempDirectory();
        var certs = TlsCertificates.Create(dir.File("pki"));
        string theirsImage = dir.File("theirs.qcow2"), oursImage = dir.File("ours.qcow2");
        QemuImg.Create("qcow2", theirsImage, "16M");
        QemuIo.RunChecked(theirsImage, "qcow2", "write -q -P 0x61 0 1M", "write -q -z 4M 1M");
        File.Copy(theirsImage, oursImage);
        string client = Object(certs.ClientDirectory, "client");

        string Session(NbdProcess server)
        {
            string s = server.Socket;
            string tlsUri = $"nbds+unix:///disk?socket={s}&tls-certificates={certs.ClientDirectory}&tls-hostname=localhost";
            var caOnly = ProcessRunner.Run(QemuImg.Path, ["info", "--object", Object(certs.CaOnlyDirectory, "client"), "--image-opts", ImageOpts(s)]);
            return string.Join("\n---\n",
                Run(s, QemuImg.Path, "info", "--object", client, "--image-opts", ImageOpts(s)),
                Run(s, QemuImg.Path, "map", "--output=json", "--object", client, "--image-opts", ImageOpts(s)),
                Run(s, QemuImg.Path, "info", server.Uri("disk")),
                Run(s, QemuIo.Path, "--object", client, "--image-opts", "-c", "write -q -P 0x5c 1M 2M", "-c", "write -q -z 0 4k",
                    "-c", "read -q -P 0x5c 1M 2M", "-c", "flush", ImageOpts(s)),
                Run(s, Nbdinfo, "--json", tlsUri),
                Run(s, Nbdinfo, "--map", tlsUri),
                // Without a client certificate the handshake fails; the errno GnuTLS reports varies with timing.
                $"no client certificate: exit {caOnly.ExitCode}");
        }

        string[] Arguments(string image) =>
            ["--object", Object(certs.ServerDirectory, "server"), "--tls-creds", "tls0", "-f", "qcow2", "-x", "disk", "-t", image];
        string theirs, ours;
        using (var q = NbdProcess.Qemu(dir.File("q.sock"), Arguments(theirsImage)))
            theirs = Session(q);
        using (var b = NbdProcess.Blk(dir.File("b.sock"), Arguments(oursImage)))
            ours = Session(b);
        Assert.Equal(theirs, ours);
        Assert.Contains("exit 0\nimage: nbd+unix:///disk?socket=SOCKET\nfile format: nbd", ours, StringComparison.Ordinal);
        Assert.Contains("TLS negotiation required before option 7 (go)", ours, StringComparison.Ordinal);
        Assert.Equal(0, QemuImg.Compare(theirsImage, oursImage, "qcow2", "qcow2"));
    }

    public static TheoryData<string> BadTlsCommandLines => new()
    {
        "--object tls-creds-x509,id=tls0,dir=CLIENT,endpoint=client --tls-creds tls0 -k SOCKET IMAGE",
        "--object secret,id=tls0,data=x --tls-creds tls0 -k SOCKET IMAGE",
        "--object tls-creds-x509,id=tls0,dir=CLIENT,endpoint=server --tls-creds tls0 -k SOCKET IMAGE",
        "--object tls-creds-x509,id=tls1,dir=SERVER,endpoint=server --tls-creds tls0 -k SOCKET IMAGE",
    };

    [Theory]
    [MemberData(nameof(BadTlsCommandLines))]
    public void Tls_command_line_errors_are_qemu_nbds(string line)
    {
        using var dir = new TempDirectory();
        var certs = TlsCertificates.Create(dir.File("pki"));
        string image = dir.File("a.qcow2");
        QemuImg.Create("qcow2", image, "1M");
        string[] args = line.Split(' ').Select(a => a.Replace("IMAGE", image).Replace("SOCKET", dir.File("s.sock"))
            .Replace("CLIENT", certs.ClientDirectory).Replace("SERVER", certs.ServerDirectory)).ToArray();
        var theirs = ProcessRunner.Run(QemuNbd.Path, args, TimeSpan.FromSeconds(60));
        var ours = BlkRunner.Run(["nbd", .. args]);
        Assert.Equal(theirs.ExitCode, ours.ExitCode);
        Assert.Equal(theirs.Stderr.Replace(QemuNbd.Path, "qemu-nbd").Replace("qemu-nbd: ", "blk: "), ours.Stderr);
    }

    [Fact]
    public async Task Nbd_server_start_with_tls_creds_answers_and_serves_as_qemu_storage_daemon_does()
    {
        using var dir = new TempDirectory();
        var certs = TlsCertificates.Create(dir.File("pki"));
        string image = dir.File("disk.qcow2");
        QemuImg.Create("qcow2", image, "16M");
        QemuIo.RunChecked(image, "qcow2", "write -q -P 0x61 0 1M");
        string[] commandLine =
        [
            "--object", Object(certs.ServerDirectory, "server", "srv"), "--object", Object(certs.ClientDirectory, "client", "cli"),
            "--object", "secret,id=sec0,data=x",
            "--blockdev", $"driver=file,node-name=file0,filename={image}", "--blockdev", "driver=qcow2,node-name=fmt0,file=file0",
        ];
        string client = Object(certs.ClientDirectory, "client");

        async Task<List<string>> SessionAsync(QemuStorageDaemon daemon, string socket)
        {
            var replies = new List<string>();
            async Task Qmp(string command, JsonObject? arguments = null)
            {
                var reply = await daemon.Qmp.ExecuteAsync(command, arguments);
                replies.Add($"{command}: {reply.ToJsonString().Replace(socket, "SOCKET", StringComparison.Ordinal)}");
            }
            JsonObject Start(string creds) => new()
            {
                ["addr"] = new JsonObject { ["type"] = "unix", ["data"] = new JsonObject { ["path"] = socket } },
                ["tls-creds"] = creds,
            };
            await Qmp("nbd-server-start", Start("nope"));
            await Qmp("nbd-server-start", Start("cli"));
            await Qmp("nbd-server-start", Start("sec0"));
            await Qmp("nbd-server-start", Start("srv"));
            await Qmp("nbd-server-add", new JsonObject { ["device"] = "fmt0", ["name"] = "disk", ["writable"] = true });
            replies.Add(Run(socket, QemuIo.Path, "-f", "raw", "-c", "read -q 0 512", $"nbd+unix:///disk?socket={socket}"));
            replies.Add(Run(socket, QemuIo.Path, "--object", client, "--image-opts", "-c", "read -q -P 0x61 0 1M",
                "-c", "write -q -P 0x62 2M 64k", "-c", "read -q -P 0x62 2M 64k", ImageOpts(socket)));
            await Qmp("nbd-server-stop");
            return replies;
        }

        List<string> ours, theirs;
        await using (var blk = await BlkServe.StartAsync(commandLine))
            ours = await SessionAsync(blk, dir.File("ours.sock"));
        await using (var qsd = await QemuStorageDaemon.StartAsync(commandLine))
            theirs = await SessionAsync(qsd, dir.File("theirs.sock"));
        Assert.Equal(string.Join("\n", theirs), string.Join("\n", ours));
        Assert.Equal("exit 0\n\n", ours[^2]);
    }
}
