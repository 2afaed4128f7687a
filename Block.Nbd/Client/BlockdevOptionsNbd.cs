using Block.Options;

namespace Block.Nbd.Client;

/// <summary>QAPI <c>BlockdevOptionsNbd</c>: the server, the export, and TLS (<c>tls-creds</c>, 7.2's <c>tls-hostname</c>).</summary>
public sealed record BlockdevOptionsNbd : BlockdevOptions
{
    /// <summary>Creates options for the <c>nbd</c> driver.</summary>
    [System.Diagnostics.CodeAnalysis.SetsRequiredMembers]
    public BlockdevOptionsNbd()
    {
        Driver = "nbd";
        Server = NbdServerAddress.Inet("localhost");
    }

    /// <summary>The server's address.</summary>
    public required NbdServerAddress Server { get; init; }

    /// <summary>The export name; null asks for the default export (the empty name).</summary>
    public string? Export { get; init; }

    /// <summary>The id of a <c>tls-creds-x509</c> object: negotiate TLS with its certificates.</summary>
    public string? TlsCreds { get; init; }

    /// <summary>The name the server's certificate must carry; by default the inet host (QEMU 7.2).</summary>
    public string? TlsHostname { get; init; }
}
