namespace Block.Gluster.Options;

/// <summary>
/// QAPI <c>GlusterServer</c>: one volfile server, a flat union on <c>type</c> — <c>tcp</c> with <c>host</c> and
/// <c>port</c> (QAPI <c>InetSocketAddress</c>), or <c>unix</c> with <c>path</c> (QAPI <c>UnixSocketAddress</c>).
/// </summary>
public sealed record GlusterServer
{
    /// <summary>The port glusterd listens on unless told otherwise.</summary>
    public const int DefaultPort = 24007;

    /// <summary>A TCP server.</summary>
    public static GlusterServer ForTcp(string host, string? port = null) => new() { Type = GlusterTransport.Tcp, Host = host, Port = port };

    /// <summary>A server on a Unix domain socket.</summary>
    public static GlusterServer ForUnix(string socketPath) => new() { Type = GlusterTransport.Unix, Path = socketPath };

    /// <summary>The transport.</summary>
    public GlusterTransport Type { get; init; }

    /// <summary>For <c>tcp</c>: the host name or address.</summary>
    public string? Host { get; init; }

    /// <summary>For <c>tcp</c>: the port (a number, as a string in the schema); null is 24007.</summary>
    public string? Port { get; init; }

    /// <summary>For <c>unix</c>: the socket's path.</summary>
    public string? Path { get; init; }
}
