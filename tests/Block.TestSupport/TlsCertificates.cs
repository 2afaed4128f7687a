namespace Block.TestSupport;

/// <summary>
/// X.509 credentials made by GnuTLS's certtool for TLS tests, laid out as QEMU's <c>tls-creds-x509</c> directories:
/// <see cref="ServerDirectory"/> (CA, server certificate for <c>localhost</c> and 127.0.0.1 and its key),
/// <see cref="ClientDirectory"/> (CA, client certificate and key), <see cref="CaOnlyDirectory"/> (CA only) and
/// <see cref="OtherCaDirectory"/> (a CA that signed nothing here).
/// </summary>
public sealed class TlsCertificates
{
    private TlsCertificates(string root)
    {
        ServerDirectory = System.IO.Path.Combine(root, "server");
        ClientDirectory = System.IO.Path.Combine(root, "client");
        CaOnlyDirectory = System.IO.Path.Combine(root, "ca-only");
        OtherCaDirectory = System.IO.Path.Combine(root, "other-ca");
    }

    /// <summary>The server's directory.</summary>
    public string ServerDirectory { get; }

    /// <summary>A client's directory with its certificate.</summary>
    public string ClientDirectory { get; }

    /// <summary>A client's directory without a certificate.</summary>
    public string CaOnlyDirectory { get; }

    /// <summary>A client's directory whose CA did not sign the server's certificate.</summary>
    public string OtherCaDirectory { get; }

    /// <summary>Makes the credentials under <paramref name="root"/>.</summary>
    public static TlsCertificates Create(string root)
    {
        string certtool = ProcessRunner.Which("certtool")
            ?? throw new InvalidOperationException("certtool is not installed: the TLS tests need Debian's gnutls-bin (run ./test.sh, which installs it)");
        var result = new TlsCertificates(root);
        string work = System.IO.Path.Combine(root, "work");
        foreach (var d in new[] { work, result.ServerDirectory, result.ClientDirectory, result.CaOnlyDirectory, result.OtherCaDirectory })
            Directory.CreateDirectory(d);
        string W(string name) => System.IO.Path.Combine(work, name);
        void Run(params string[] args) => ProcessRunner.Run(certtool, args).EnsureSuccess("certtool");

        File.WriteAllText(W("ca.info"), "cn = Test CA\nca\ncert_signing_key\nexpiration_days = 3650\n");
        File.WriteAllText(W("server.info"), "organization = Test\ncn = localhost\ndns_name = localhost\nip_address = 127.0.0.1\ntls_www_server\nencryption_key\nsigning_key\nexpiration_days = 3650\n");
        File.WriteAllText(W("client.info"), "organization = Test\ncn = client\ntls_www_client\nencryption_key\nsigning_key\nexpiration_days = 3650\n");
        foreach (var ca in new[] { "ca", "other" })
        {
            Run("--generate-privkey", "--outfile", W($"{ca}-key.pem"));
            Run("--generate-self-signed", "--load-privkey", W($"{ca}-key.pem"), "--template", W("ca.info"), "--outfile", W($"{ca}-cert.pem"));
        }
        foreach (var side in new[] { "server", "client" })
        {
            Run("--generate-privkey", "--outfile", W($"{side}-key.pem"));
            Run("--generate-certificate", "--load-privkey", W($"{side}-key.pem"), "--load-ca-certificate", W("ca-cert.pem"),
                "--load-ca-privkey", W("ca-key.pem"), "--template", W($"{side}.info"), "--outfile", W($"{side}-cert.pem"));
        }
        void Put(string dir, string from, string to) => File.Copy(W(from), System.IO.Path.Combine(dir, to));
        Put(result.ServerDirectory, "ca-cert.pem", "ca-cert.pem");
        Put(result.ServerDirectory, "server-cert.pem", "server-cert.pem");
        Put(result.ServerDirectory, "server-key.pem", "server-key.pem");
        Put(result.ClientDirectory, "ca-cert.pem", "ca-cert.pem");
        Put(result.ClientDirectory, "client-cert.pem", "client-cert.pem");
        Put(result.ClientDirectory, "client-key.pem", "client-key.pem");
        Put(result.CaOnlyDirectory, "ca-cert.pem", "ca-cert.pem");
        Put(result.OtherCaDirectory, "other-cert.pem", "ca-cert.pem");
        return result;
    }
}
