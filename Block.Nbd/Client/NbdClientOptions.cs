using System.Net.Security;

namespace Block.Nbd.Client;

/// <summary>How an <see cref="NbdClient"/> negotiates.</summary>
public sealed record NbdClientOptions
{
    /// <summary>The export name; empty for the default export.</summary>
    public string Export { get; init; } = string.Empty;

    /// <summary>TLS settings; null for a plain session. Set, the client sends <c>NBD_OPT_STARTTLS</c> first.</summary>
    public SslClientAuthenticationOptions? Tls { get; init; }

    /// <summary>Ask for structured replies (and with them <c>base:allocation</c>); on by default.</summary>
    public bool StructuredReplies { get; init; } = true;

    /// <summary>How many requests may be in flight on the connection (QEMU's client allows 16).</summary>
    public int MaxInFlight { get; init; } = 16;
}
