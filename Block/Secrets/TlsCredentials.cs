namespace Block.Secrets;

/// <summary>
/// QEMU's <c>tls-creds-x509</c> object: a directory of PEM files (<c>ca-cert.pem</c>; <c>server-cert.pem</c> and
/// <c>server-key.pem</c> for a server; <c>client-cert.pem</c> and <c>client-key.pem</c>, optional, for a client),
/// the side it is for, and whether the peer's certificate is checked.
/// </summary>
/// <param name="Id">The object's id, which <c>tls-creds</c> options name.</param>
/// <param name="Directory">The directory holding the PEM files.</param>
/// <param name="IsServer">True for <c>endpoint=server</c>, false for <c>endpoint=client</c> (the default).</param>
/// <param name="VerifyPeer">Check the peer's certificate against <c>ca-cert.pem</c> (default on).</param>
public sealed record TlsCredentials(string Id, string Directory, bool IsServer, bool VerifyPeer)
{
    /// <summary>The CA certificates that peers' certificates must chain to.</summary>
    public string CaCertificatePath => Path.Combine(Directory, "ca-cert.pem");

    /// <summary>This side's certificate (<c>server-cert.pem</c> or <c>client-cert.pem</c>).</summary>
    public string CertificatePath => Path.Combine(Directory, IsServer ? "server-cert.pem" : "client-cert.pem");

    /// <summary>This side's private key (<c>server-key.pem</c> or <c>client-key.pem</c>).</summary>
    public string KeyPath => Path.Combine(Directory, IsServer ? "server-key.pem" : "client-key.pem");

    /// <summary>
    /// Checks that the files QEMU requires exist: the CA certificate when peers are verified, and a server's certificate
    /// and key. A client's certificate is optional.
    /// </summary>
    /// <exception cref="BlockException">QEMU's "Unable to access credentials PATH: No such file or directory".</exception>
    public void Validate()
    {
        if (VerifyPeer)
            Require(CaCertificatePath);
        if (IsServer)
        {
            Require(CertificatePath);
            Require(KeyPath);
        }
    }

    private static void Require(string path)
    {
        if (!File.Exists(path))
            throw new BlockException(Errno.ENOENT, $"Unable to access credentials {path}: No such file or directory");
    }
}
