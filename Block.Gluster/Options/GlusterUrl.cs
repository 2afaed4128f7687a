namespace Block.Gluster.Options;

/// <summary>
/// QEMU's <c>gluster[+tcp|+unix|+rdma]://[host[:port]]/volume/path[?socket=/path]</c> file names.
/// </summary>
public static class GlusterUrl
{
    /// <summary>The hint QEMU 7.2 prints under a file name it cannot parse.</summary>
    public const string UsageHint =
        "Usage: file=gluster[+transport]://[host[:port]]volume/path[?socket=...][,file.debug=N][,file.logfile=/path/filename.log]";

    /// <summary>Parses a <c>gluster</c> URL into options, with QEMU 7.2's message for one it refuses.</summary>
    /// <remarks>
    /// As in QEMU: <c>gluster+unix</c> takes no host and exactly one parameter, <c>socket</c>; the others take no
    /// parameter at all; a missing host is <c>localhost</c>; <c>gluster+rdma</c> warns (through
    /// <paramref name="warn"/>) and uses TCP. The volume is the first path component and the rest is the image.
    /// </remarks>
    public static BlockdevOptionsGluster Parse(string filename, Action<string>? warn = null)
    {
        ArgumentNullException.ThrowIfNull(filename);
        int schemeEnd = filename.IndexOf("://", StringComparison.Ordinal);
        if (schemeEnd <= 0)
            throw Invalid(filename);
        string scheme = filename[..schemeEnd];
        GlusterTransport transport;
        switch (scheme)
        {
            case "gluster" or "gluster+tcp":
                transport = GlusterTransport.Tcp;
                break;
            case "gluster+unix":
                transport = GlusterTransport.Unix;
                break;
            case "gluster+rdma":
                transport = GlusterTransport.Tcp;
                warn?.Invoke("rdma feature is not supported, falling back to tcp");
                break;
            default:
                throw Invalid(filename);
        }
        string rest = filename[(schemeEnd + 3)..];
        string? query = null;
        int q = rest.IndexOf('?', StringComparison.Ordinal);
        if (q >= 0)
        {
            query = rest[(q + 1)..];
            rest = rest[..q];
        }
        int slash = rest.IndexOf('/', StringComparison.Ordinal);
        string authority = slash < 0 ? rest : rest[..slash];
        string path = slash < 0 ? string.Empty : Uri.UnescapeDataString(rest[slash..]);

        string volumeAndImage = path.TrimStart('/');
        int split = volumeAndImage.IndexOf('/', StringComparison.Ordinal);
        if (split <= 0)
            throw Invalid(filename);
        string volume = volumeAndImage[..split];
        string image = volumeAndImage[split..].TrimStart('/');
        if (image.Length == 0)
            throw Invalid(filename);

        var parameters = string.IsNullOrEmpty(query) ? [] : query.Split('&', StringSplitOptions.RemoveEmptyEntries);
        GlusterServer server;
        if (transport == GlusterTransport.Unix)
        {
            if (authority.Length != 0 || parameters.Length != 1)
                throw Invalid(filename);
            int eq = parameters[0].IndexOf('=', StringComparison.Ordinal);
            if (eq < 0 || Uri.UnescapeDataString(parameters[0][..eq]) != "socket")
                throw Invalid(filename);
            server = GlusterServer.ForUnix(Uri.UnescapeDataString(parameters[0][(eq + 1)..]));
        }
        else
        {
            if (parameters.Length != 0)
                throw Invalid(filename);
            int at = authority.LastIndexOf('@');
            if (at >= 0)
                authority = authority[(at + 1)..];
            string host = authority;
            string? port = null;
            if (host.StartsWith('['))
            {
                int close = host.IndexOf(']', StringComparison.Ordinal);
                if (close < 0)
                    throw Invalid(filename);
                if (close + 1 < host.Length && host[close + 1] == ':')
                    port = host[(close + 2)..];
                host = host[1..close];
            }
            else if (host.LastIndexOf(':') is var colon and >= 0)
            {
                port = host[(colon + 1)..];
                host = host[..colon];
            }
            if (port is { Length: 0 } || port is "0")
                port = null;
            if (port != null && !int.TryParse(port, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out _))
                throw Invalid(filename);
            server = GlusterServer.ForTcp(host.Length == 0 ? "localhost" : host, port);
        }
        return new BlockdevOptionsGluster { Volume = volume, Path = image, Server = [server] };
    }

    /// <summary>
    /// The node's file name: <c>gluster://host[:port]/volume/path</c> or
    /// <c>gluster+unix:///volume/path?socket=…</c>, from the first server.
    /// </summary>
    public static string Format(BlockdevOptionsGluster options)
    {
        ArgumentNullException.ThrowIfNull(options);
        var first = options.Server.Count > 0 ? options.Server[0] : GlusterServer.ForTcp("localhost");
        string path = options.Path.TrimStart('/');
        if (first.Type == GlusterTransport.Unix)
            return $"gluster+unix:///{options.Volume}/{path}?socket={first.Path}";
        string host = first.Host!.Contains(':', StringComparison.Ordinal) ? $"[{first.Host}]" : first.Host!;
        return first.Port is null ? $"gluster://{host}/{options.Volume}/{path}" : $"gluster://{host}:{first.Port}/{options.Volume}/{path}";
    }

    private static BlockOptionsException Invalid(string filename) => new($"invalid URI {filename}\n{UsageHint}");
}
