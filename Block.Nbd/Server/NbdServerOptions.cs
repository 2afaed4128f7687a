namespace Block.Nbd.Server;

/// <summary>Settings of an <see cref="NbdServer"/>.</summary>
public sealed record NbdServerOptions
{
    /// <summary>The most clients served at once; 0 for no limit (QEMU's <c>max-connections</c>).</summary>
    /// <remarks>At the limit the server stops accepting, so a further client waits in the listen backlog.</remarks>
    public int MaxConnections { get; init; }

    /// <summary>How long a client may take to finish the handshake before it is disconnected.</summary>
    /// <remarks>10 s, QEMU 7.2's <c>handshake-max-seconds</c> default: a client that connects and says nothing
    /// must not hold a connection slot forever.</remarks>
    public TimeSpan HandshakeTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>The most requests of one client processed at once; further requests wait unread in the socket.</summary>
    /// <remarks>16, as QEMU's server: with 32 MiB at most per request, one client holds at most 512 MiB of
    /// buffers, and in practice what its requests ask for.</remarks>
    public int MaxRequestsInFlight { get; init; } = 16;

    /// <summary>The most READ and WRITE payload bytes of one client held at once; further requests wait unread in the
    /// socket. At least 32 MiB (one request of the largest size always runs).</summary>
    /// <remarks>64 MiB by default. QEMU bounds only the number of requests (16, so 512 MiB of 32 MiB requests per
    /// client); with this bound a client that pipelines large writes faster than the disk takes them costs the server
    /// 64 MiB, and ordinary clients (1–4 MiB requests, QD ≤ 16) never reach it.</remarks>
    public long MaxBytesInFlight { get; init; } = 64L << 20;

    /// <summary>
    /// TLS for every client (QEMU's <c>tls-creds</c>), or null for none; <see cref="NbdServerTls"/> builds it from a
    /// <c>tls-creds-x509</c> object.
    /// </summary>
    /// <remarks>As in QEMU, TLS is then required: before <c>NBD_OPT_STARTTLS</c> every other option is refused with
    /// <c>NBD_REP_ERR_TLS_REQD</c> (<c>NBD_OPT_EXPORT_NAME</c>, which cannot be refused, hangs up), so no export is
    /// listed or served in clear.</remarks>
    public System.Net.Security.SslServerAuthenticationOptions? Tls { get; init; }
}
