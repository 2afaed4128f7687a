using System.Text;
using Block.Curl.Interop;
using Block.Curl.Transfer;
using Block.Drivers;
using Block.Options;

namespace Block.Curl;

/// <summary>
/// One of the curl protocol drivers (<c>http</c>, <c>https</c>, <c>ftp</c>, <c>ftps</c>): a read-only node whose
/// bytes are an image on a web or FTP server, read in ranges through libcurl, as QEMU's curl driver reads them.
/// </summary>
/// <remarks>
/// libcurl rather than <c>HttpClient</c>: ftp and ftps need libcurl anyway, one transfer engine keeps the four
/// schemes' behaviour (redirects, proxies from <c>http_proxy</c>/<c>https_proxy</c>/<c>no_proxy</c>, authentication,
/// TLS) identical to QEMU's, which links the same library, and libcurl's multi interface runs every transfer of a
/// node on one thread with no task or buffer per request.
/// </remarks>
public sealed class CurlDriver : BlockDriver
{
    /// <summary>QEMU's readahead default: 256 KiB past each request.</summary>
    public const long DefaultReadahead = 256 * 1024;

    /// <summary>QEMU's timeout default, in seconds.</summary>
    public const long DefaultTimeoutSeconds = 5;

    /// <summary>QEMU's largest timeout, in seconds.</summary>
    public const long MaxTimeoutSeconds = 10000;

    internal static readonly string[] Schemes = ["http", "https", "ftp", "ftps"];

    private readonly string[] _prefixes;

    /// <summary>Creates the driver for <paramref name="scheme"/> (<c>http</c>, <c>https</c>, <c>ftp</c> or <c>ftps</c>).</summary>
    public CurlDriver(string scheme)
    {
        ArgumentNullException.ThrowIfNull(scheme);
        if (Array.IndexOf(Schemes, scheme) < 0)
            throw new ArgumentException($"'{scheme}' is not a curl scheme", nameof(scheme));
        Name = scheme;
        _prefixes = [scheme];
    }

    /// <inheritdoc />
    public override string Name { get; }

    /// <inheritdoc />
    public override BlockDriverKind Kind => BlockDriverKind.Protocol;

    /// <inheritdoc />
    public override IReadOnlyList<string> ProtocolPrefixes => _prefixes;

    /// <inheritdoc />
    /// <remarks>QEMU takes the whole file name as the URL.</remarks>
    public override BlockdevOptions OptionsFromFilename(string filename) =>
        new BlockdevOptionsCurl { Driver = Name, Url = filename };

    /// <inheritdoc />
    public override BlockdevOptions ParseOptions(OptionsReader reader, BlockdevOptionsParser parser)
    {
        ArgumentNullException.ThrowIfNull(reader);
        // A file name reaches the driver as "filename" (QEMU's bdrv_parse_filename turns it into the url).
        string? filename = reader.String("filename");
        string? url = reader.String("url") ?? filename;
        long? readahead = (long?)reader.Size("readahead");
        long? timeout = reader.Int("timeout");
        bool? sslVerify = reader.Bool("sslverify");
        string? cookie = reader.String("cookie");
        string? cookieSecret = reader.String("cookie-secret");
        string? username = reader.String("username");
        string? passwordSecret = reader.String("password-secret");
        string? proxyUsername = reader.String("proxy-username");
        string? proxyPasswordSecret = reader.String("proxy-password-secret");
        if (url is null)
            throw new BlockOptionsException("curl block driver requires an 'url' option");
        if (readahead is { } r && (r % 512 != 0 || r < 0))
            throw new BlockOptionsException($"HTTP_READAHEAD_SIZE {r} is not a multiple of 512");
        if (timeout is { } t && (t < 0 || t > MaxTimeoutSeconds))
            throw new BlockOptionsException("timeout parameter is too large or negative");
        if (cookie != null && cookieSecret != null)
            throw new BlockOptionsException("curl driver cannot handle both cookie and cookie secret");
        return new BlockdevOptionsCurl
        {
            Driver = Name,
            Url = url,
            Readahead = readahead,
            Timeout = timeout,
            SslVerify = sslVerify,
            Cookie = cookie,
            CookieSecret = cookieSecret,
            Username = username,
            PasswordSecret = passwordSecret,
            ProxyUsername = proxyUsername,
            ProxyPasswordSecret = proxyPasswordSecret,
        };
    }

    /// <inheritdoc />
    public override async ValueTask<NodeDriver> OpenAsync(NodeOpenContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var options = (BlockdevOptionsCurl)context.Options;
        if (!context.Node.ReadOnly)
            throw new BlockException(Errno.EROFS, "curl block device does not support writes");
        var settings = new CurlSettings
        {
            Url = options.Url,
            TimeoutSeconds = options.Timeout ?? DefaultTimeoutSeconds,
            SslVerify = options.SslVerify ?? true,
            Cookie = options.Cookie ?? Secret(context, options.CookieSecret),
            Username = options.Username,
            Password = Secret(context, options.PasswordSecret),
            ProxyUsername = options.ProxyUsername,
            ProxyPassword = Secret(context, options.ProxyPasswordSecret),
        };
        CurlLibrary.EnsureLoaded();
        bool http = Name is "http" or "https";
        var probe = await Task.Run(() => CurlProbe.Run(settings), cancellationToken).ConfigureAwait(false);
        if (probe.Error != null)
            throw new BlockException(Errno.EIO, $"CURL: Error opening file: {probe.Error}");
        if (probe.Length < 0)
            throw new BlockException(Errno.EIO, "CURL: Error opening file: Server didn't report file size.");
        if (http && !probe.AcceptsRanges)
            throw new BlockException(Errno.EIO, "CURL: Error opening file: Server does not support 'range' (byte ranges).");
        return new CurlNodeDriver(context.Node, settings, probe.Length, options.Readahead ?? DefaultReadahead, http);
    }

    private static string? Secret(NodeOpenContext context, string? id) =>
        id is null ? null : Encoding.UTF8.GetString(context.Graph.Secrets.Get(id).Span);
}
