using Block.Curl.Interop;

namespace Block.Curl.Transfer;

/// <summary>What every transfer of a curl node is configured with: URL, timeout, TLS checking, cookie, credentials.</summary>
internal sealed class CurlSettings
{
    public required string Url { get; init; }

    public long TimeoutSeconds { get; init; } = CurlDriver.DefaultTimeoutSeconds;

    public bool SslVerify { get; init; } = true;

    public string? Cookie { get; init; }

    public string? Username { get; init; }

    public string? Password { get; init; }

    public string? ProxyUsername { get; init; }

    public string? ProxyPassword { get; init; }

    /// <summary>
    /// Applies the settings to <paramref name="easy"/> the way QEMU configures its handles: redirects followed,
    /// HTTP errors are transfer errors, only http/https/ftp/ftps reachable, no signals, the node's timeout.
    /// The proxy is libcurl's own choice from <c>http_proxy</c>, <c>https_proxy</c>, <c>all_proxy</c> and
    /// <c>no_proxy</c>, as in QEMU.
    /// </summary>
    public void Apply(nint easy)
    {
        LibCurl.SetOpt(easy, LibCurl.OptUrl, Url);
        LibCurl.SetOptLong(easy, LibCurl.OptTimeout, TimeoutSeconds);
        LibCurl.SetOptLong(easy, LibCurl.OptFollowLocation, 1);
        LibCurl.SetOptLong(easy, LibCurl.OptAutoReferer, 1);
        LibCurl.SetOptLong(easy, LibCurl.OptFailOnError, 1);
        LibCurl.SetOptLong(easy, LibCurl.OptNoSignal, 1);
        LibCurl.SetOptLong(easy, LibCurl.OptProtocols, LibCurl.ProtocolsAllowed);
        LibCurl.SetOptLong(easy, LibCurl.OptRedirProtocols, LibCurl.ProtocolsAllowed);
        LibCurl.SetOptLong(easy, LibCurl.OptSslVerifyPeer, SslVerify ? 1 : 0);
        LibCurl.SetOptLong(easy, LibCurl.OptSslVerifyHost, SslVerify ? 2 : 0);
        if (Cookie != null)
            LibCurl.SetOpt(easy, LibCurl.OptCookie, Cookie);
        if (Username != null)
            LibCurl.SetOpt(easy, LibCurl.OptUsername, Username);
        if (Password != null)
            LibCurl.SetOpt(easy, LibCurl.OptPassword, Password);
        if (ProxyUsername != null)
            LibCurl.SetOpt(easy, LibCurl.OptProxyUsername, ProxyUsername);
        if (ProxyPassword != null)
            LibCurl.SetOpt(easy, LibCurl.OptProxyPassword, ProxyPassword);
    }
}
