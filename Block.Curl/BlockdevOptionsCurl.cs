using Block.Options;

namespace Block.Curl;

/// <summary>
/// QEMU 7.2's options of the <c>http</c>, <c>https</c>, <c>ftp</c> and <c>ftps</c> drivers
/// (<c>BlockdevOptionsCurlBase</c> and its http/https/ftps extensions).
/// </summary>
/// <remarks>
/// As in QEMU, every driver takes every member: QEMU reads them from one option list for the four drivers, so
/// <c>sslverify</c> on an <c>http</c> node is accepted and has nothing to verify.
/// </remarks>
public sealed record BlockdevOptionsCurl : BlockdevOptions
{
    /// <summary>The image's URL.</summary>
    public required string Url { get; init; }

    /// <summary>Bytes read past each request, in multiples of 512; QEMU's default is 256 KiB.</summary>
    public long? Readahead { get; init; }

    /// <summary>Seconds a whole transfer may take (libcurl's <c>CURLOPT_TIMEOUT</c>), 0 to 10000; QEMU's default is 5.</summary>
    public long? Timeout { get; init; }

    /// <summary>Whether to check the server's TLS certificate (https, ftps); on by default.</summary>
    public bool? SslVerify { get; init; }

    /// <summary>Cookies sent with every request (<c>name=value; name2=value2</c>), http and https.</summary>
    public string? Cookie { get; init; }

    /// <summary>The id of a secret holding <see cref="Cookie"/>'s text.</summary>
    public string? CookieSecret { get; init; }

    /// <summary>The user name to authenticate as.</summary>
    public string? Username { get; init; }

    /// <summary>The id of a secret holding the password.</summary>
    public string? PasswordSecret { get; init; }

    /// <summary>The user name to authenticate to the proxy as.</summary>
    public string? ProxyUsername { get; init; }

    /// <summary>The id of a secret holding the proxy password.</summary>
    public string? ProxyPasswordSecret { get; init; }
}
