using System.Diagnostics;
using Block.TestSupport;

namespace Block.Curl.Tests;

/// <summary>
/// vsftpd (an FTP server we did not write) serving a directory to anonymous users on a loopback port picked free,
/// in plain FTP or implicit FTPS (what an <c>ftps://</c> URL speaks), stopped when disposed.
/// </summary>
internal sealed class Vsftpd : IDisposable
{
    private static readonly Lazy<string> s_path = new(() =>
        new[] { "/usr/sbin/vsftpd", ProcessRunner.Which("vsftpd") }.FirstOrDefault(File.Exists)
        ?? throw new InvalidOperationException("vsftpd is not installed: the ftp tests need Debian's vsftpd (run ./test.sh, which installs it)"));

    private readonly Process _process;

    private Vsftpd(Process process, string root, int port, bool tls)
    {
        _process = process;
        Root = root;
        Port = port;
        Tls = tls;
    }

    /// <summary>The directory served.</summary>
    public string Root { get; }

    public int Port { get; }

    public bool Tls { get; }

    public string Url(string name) => $"{(Tls ? "ftps" : "ftp")}://127.0.0.1:{Port}/{name}";

    /// <summary>Starts vsftpd over <paramref name="directory"/>/ftp (<paramref name="tls"/>: implicit TLS with a made certificate).</summary>
    public static Vsftpd Start(string directory, bool tls)
    {
        string root = Path.Combine(directory, "ftp");
        Directory.CreateDirectory(root);
        int port = FreePort.Next();
        int passive = FreePort.Next();
        string config = Path.Combine(directory, "vsftpd.conf");
        string text = $"""
            listen=YES
            listen_address=127.0.0.1
            listen_port={port}
            background=NO
            run_as_launching_user=YES
            anonymous_enable=YES
            no_anon_password=YES
            anon_root={root}
            local_enable=NO
            write_enable=NO
            pasv_enable=YES
            pasv_min_port={passive}
            pasv_max_port={passive + 20}
            pasv_address=127.0.0.1
            seccomp_sandbox=NO
            xferlog_enable=NO
            vsftpd_log_file={directory}/vsftpd.log
            max_clients=64
            max_per_ip=64

            """;
        if (tls)
        {
            var certificates = TlsCertificates.Create(Path.Combine(directory, "tls"));
            text += $"""
                ssl_enable=YES
                implicit_ssl=YES
                allow_anon_ssl=YES
                force_anon_logins_ssl=YES
                force_anon_data_ssl=YES
                require_ssl_reuse=NO
                rsa_cert_file={certificates.ServerDirectory}/server-cert.pem
                rsa_private_key_file={certificates.ServerDirectory}/server-key.pem

                """;
        }
        File.WriteAllText(config, text);
        var process = ProcessRunner.Start(s_path.Value, [config]);
        FreePort.WaitListening(port, process, "vsftpd");
        return new Vsftpd(process, root, port, tls);
    }

    public void Dispose()
    {
        try
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
        _process.Dispose();
    }
}
