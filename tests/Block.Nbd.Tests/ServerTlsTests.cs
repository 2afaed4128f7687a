using System.Buffers.Binary;
using System.Security.Authentication;
using System.Text;
using Block.Nbd.Protocol;
using Block.Nbd.Server;
using Block.Secrets;
using Block.TestSupport;

namespace Block.Nbd.Tests;

/// <summary>
/// The server with <c>tls-creds</c>, driven option by option against qemu-nbd 7.2 with the same certtool-made
/// credentials: the same refusals before STARTTLS, the same answers after it, and no service without a client
/// certificate when the credentials verify peers.
/// </summary>
public sealed class ServerTlsTests
{
    private const string Export = "disk";

    [Fact]
    public async Task Options_before_and_after_starttls_get_qemu_nbds_answers()
    {
        using var dir = new TempDirectory();
        var certs = TlsCertificates.Create(dir.File("pki"));
        string image = dir.File("disk.raw");
        QemuImg.Create("raw", image, "4M");
        QemuIo.RunChecked(image, "raw", "write -q -P 0x5a 0 1M");

        List<string> theirs;
        using (QemuNbd.Start(dir.File("q.sock"), image, "-f", "raw", "-x", Export, "--object",
                   $"tls-creds-x509,id=tls0,dir={certs.ServerDirectory},endpoint=server", "--tls-creds", "tls0"))
            theirs = Transcript(dir.File("q.sock"), certs);
        var tls = NbdServerTls.Create(new TlsCredentials("tls0", certs.ServerDirectory, IsServer: true, VerifyPeer: true));
        await using (var ours = await NbdTestServer.StartAsync(dir.File("b.sock"), image, "raw", Export, options: new NbdServerOptions { Tls = tls }))
        {
            var transcript = await Task.Run(() => Transcript(ours.Socket, certs));
            Assert.Equal(theirs, transcript);
        }
    }

    private static List<string> Transcript(string socket, TlsCertificates certs)
    {
        var lines = new List<string>();
        string Reply(RawNbdClient c)
        {
            var (type, data) = c.ReceiveOptionReply();
            return $"{type:x} {Encoding.UTF8.GetString(data)}";
        }
        var name = Encoding.UTF8.GetBytes(Export);
        var go = new byte[4 + name.Length + 2];
        BinaryPrimitives.WriteUInt32BigEndian(go, (uint)name.Length);
        name.CopyTo(go, 4);
        var meta = new byte[4 + name.Length + 4];
        BinaryPrimitives.WriteUInt32BigEndian(meta, (uint)name.Length);
        name.CopyTo(meta, 4);

        // In clear: everything but STARTTLS is refused, and the connection stays until ABORT.
        using (var c = RawNbdClient.Connect(socket))
        {
            c.ReadGreeting();
            c.Send([0, 0, 0, 3]);
            foreach (var (option, data) in new (uint, byte[])[]
                     {
                         (NbdProtocol.OptList, []), (NbdProtocol.OptGo, go), (NbdProtocol.OptInfo, go),
                         (NbdProtocol.OptStructuredReply, []), (NbdProtocol.OptListMetaContext, meta),
                         (NbdProtocol.OptSetMetaContext, meta), (99, [1, 2, 3]), (NbdProtocol.OptAbort, []),
                     })
            {
                c.SendOption(option, data);
                lines.Add($"clear {option}: {Reply(c)}");
            }
            lines.Add($"closed after abort: {c.IsClosedByServer()}");
        }
        // EXPORT_NAME cannot be refused: the server hangs up. STARTTLS with a payload is refused, then hung up.
        using (var c = RawNbdClient.Connect(socket))
        {
            c.ReadGreeting();
            c.Send([0, 0, 0, 3]);
            c.SendOption(NbdProtocol.OptExportName, name);
            lines.Add($"export-name closed: {c.IsClosedByServer()}");
        }
        using (var c = RawNbdClient.Connect(socket))
        {
            c.ReadGreeting();
            c.Send([0, 0, 0, 3]);
            c.SendOption(NbdProtocol.OptStartTls, [0]);
            lines.Add($"starttls with payload: {Reply(c)}, closed: {c.IsClosedByServer()}");
        }
        // Over TLS: a second STARTTLS is refused, the export is listed and served.
        using (var c = RawNbdClient.Connect(socket))
        {
            c.StartTls(certs.ClientDirectory);
            c.SendOption(NbdProtocol.OptStartTls, []);
            lines.Add($"tls starttls: {Reply(c)}");
            c.SendOption(NbdProtocol.OptList, []);
            lines.Add($"tls list: {Reply(c)} / {Reply(c)}");
            c.NegotiateOptions(Export);
            c.SendRequest(NbdProtocol.CmdRead, 1, 4096, 4096);
            var reply = c.ReceiveReply();
            lines.Add($"tls read: {reply.Cookie} {reply.Error} {reply.ChunkType} {reply.Payload.Skip(8).All(b => b == 0x5a)}");
        }
        // A client without a certificate gets no service.
        using (var c = RawNbdClient.Connect(socket))
        {
            string outcome;
            try
            {
                c.StartTls(certs.CaOnlyDirectory);
                c.SendOption(NbdProtocol.OptList, []);
                outcome = c.IsClosedByServer() ? "refused" : "served";
            }
            catch (Exception e) when (e is AuthenticationException or IOException)
            {
                outcome = "refused";
            }
            lines.Add($"no client certificate: {outcome}");
        }
        return lines;
    }
}
