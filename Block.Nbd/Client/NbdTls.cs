using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Block.Graph;
using Block.Secrets;

namespace Block.Nbd.Client;

/// <summary>
/// The TLS settings of an NBD client node, from the <c>tls-creds-x509</c> object its options name: the server's
/// certificate must chain to the object's <c>ca-cert.pem</c> and carry the server's name (<c>tls-hostname</c>, else
/// the inet host; over a unix socket QEMU 7.2 needs <c>tls-hostname</c>), and the client's
/// certificate is sent when the directory has one.
/// </summary>
internal static class NbdTls
{
    /// <summary>Null without <c>tls-creds</c>.</summary>
    /// <exception cref="BlockException">No such object or a server-side one, with QEMU's messages.</exception>
    public static SslClientAuthenticationOptions? ClientOptions(BlockGraph graph, BlockdevOptionsNbd options)
    {
        if (options.TlsCreds is not { } id)
            return null;
        var credentials = graph.TlsCredentials.Find(id)
            ?? throw new BlockException(Errno.ENOENT, $"No TLS credentials with id '{id}'");
        if (credentials.IsServer)
            throw new BlockException(Errno.EINVAL, "Expecting TLS credentials with a client endpoint");
        string? hostname = options.TlsHostname ?? options.Server.Host;
        return Create(credentials, hostname);
    }

    /// <summary>Client options for <paramref name="credentials"/>; a verified peer must carry <paramref name="hostname"/>.</summary>
    public static SslClientAuthenticationOptions Create(TlsCredentials credentials, string? hostname)
    {
        X509Certificate2Collection? trusted = null;
        if (credentials.VerifyPeer)
        {
            trusted = [];
            trusted.ImportFromPemFile(credentials.CaCertificatePath);
        }
        var tls = new SslClientAuthenticationOptions
        {
            TargetHost = hostname ?? string.Empty,
            RemoteCertificateValidationCallback = (_, certificate, _, errors) => Verify(certificate, errors, trusted, hostname),
        };
        if (File.Exists(credentials.CertificatePath) && File.Exists(credentials.KeyPath))
        {
            try
            {
                tls.ClientCertificates = [X509Certificate2.CreateFromPemFile(credentials.CertificatePath, credentials.KeyPath)];
            }
            catch (CryptographicException e)
            {
                throw new BlockException(Errno.EINVAL, $"Unable to load the client certificate {credentials.CertificatePath}: {e.Message}");
            }
        }
        return tls;
    }

    private static bool Verify(X509Certificate? certificate, SslPolicyErrors errors, X509Certificate2Collection? trusted, string? hostname)
    {
        if (trusted is null)
            return true;
        if (certificate is null)
            throw new BlockException(Errno.EACCES, "No certificate was found");
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(trusted);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        using var peer = new X509Certificate2(certificate);
        if (!chain.Build(peer))
            throw new BlockException(Errno.EACCES, "The certificate hasn't got a known issuer");
        if (hostname is null)
            throw new BlockException(Errno.EACCES, "No hostname for certificate validation");
        if ((errors & SslPolicyErrors.RemoteCertificateNameMismatch) != 0)
            throw new BlockException(Errno.EACCES, $"Certificate does not match the hostname {hostname}");
        return true;
    }
}
