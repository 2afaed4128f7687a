using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Block.Graph;
using Block.Secrets;

namespace Block.Nbd.Server;

/// <summary>
/// The TLS side of an NBD server from a <c>tls-creds-x509,endpoint=server</c> object: the server presents
/// <c>server-cert.pem</c> with <c>server-key.pem</c> and, with <c>verify-peer</c> (the default), requires a client
/// certificate that chains to the object's <c>ca-cert.pem</c>, as QEMU's GnuTLS session does.
/// </summary>
public static class NbdServerTls
{
    /// <summary>
    /// The server options for the credentials object <paramref name="id"/> of <paramref name="graph"/>, with the
    /// messages QEMU 7.2 gives for a missing object, an object of another kind and a client-side object.
    /// </summary>
    /// <exception cref="BlockException">No usable object, or its files cannot be loaded.</exception>
    public static SslServerAuthenticationOptions FromGraph(BlockGraph graph, string id)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentNullException.ThrowIfNull(id);
        var credentials = graph.TlsCredentials.Find(id);
        if (credentials is null)
        {
            throw graph.Secrets.Find(id) != null || graph.ThrottleGroups.Find(id) != null
                ? new BlockException(Errno.EINVAL, $"Object with id '{id}' is not TLS credentials")
                : new BlockException(Errno.ENOENT, $"No TLS credentials with id '{id}'");
        }
        if (!credentials.IsServer)
            throw new BlockException(Errno.EINVAL, "Expected TLS credentials for a server endpoint");
        return Create(credentials);
    }

    /// <summary>Server options presenting <paramref name="credentials"/>' certificate and checking clients' certificates.</summary>
    /// <exception cref="BlockException">The certificate or key cannot be loaded.</exception>
    public static SslServerAuthenticationOptions Create(TlsCredentials credentials)
    {
        ArgumentNullException.ThrowIfNull(credentials);
        X509Certificate2 certificate;
        try
        {
            certificate = X509Certificate2.CreateFromPemFile(credentials.CertificatePath, credentials.KeyPath);
        }
        catch (Exception e) when (e is CryptographicException or IOException)
        {
            throw new BlockException(Errno.EINVAL, $"Unable to load the server certificate {credentials.CertificatePath}: {e.Message}");
        }
        X509Certificate2Collection? trusted = null;
        if (credentials.VerifyPeer)
        {
            trusted = [];
            try
            {
                trusted.ImportFromPemFile(credentials.CaCertificatePath);
            }
            catch (Exception e) when (e is CryptographicException or IOException)
            {
                throw new BlockException(Errno.EINVAL, $"Unable to load the CA certificate {credentials.CaCertificatePath}: {e.Message}");
            }
        }
        return new SslServerAuthenticationOptions
        {
            ServerCertificate = certificate,
            ClientCertificateRequired = trusted != null,
            RemoteCertificateValidationCallback = (_, peer, _, _) => trusted is null || Trusted(peer, trusted),
        };
    }

    /// <summary>Whether the client's certificate chains to one of <paramref name="trusted"/> (names are not checked:
    /// a client has none to match, as in QEMU).</summary>
    private static bool Trusted(X509Certificate? peer, X509Certificate2Collection trusted)
    {
        if (peer is null)
            return false;
        using var chain = new X509Chain();
        chain.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        chain.ChainPolicy.CustomTrustStore.AddRange(trusted);
        chain.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        using var certificate = new X509Certificate2(peer);
        return chain.Build(certificate);
    }
}
