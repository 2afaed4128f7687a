namespace Block.Nbd.Client;

/// <summary>
/// Where an NBD server listens: QAPI <c>SocketAddress</c> of type <c>unix</c> (a socket path) or <c>inet</c> (a host
/// name or IPv4/IPv6 address and a port).
/// </summary>
/// <param name="Path">The unix socket path, or null for an inet address.</param>
/// <param name="Host">The host name or address (IPv6 without brackets), or null for a unix socket.</param>
/// <param name="Port">The port or service, as text (QAPI's <c>port</c> is a string).</param>
public sealed record NbdServerAddress(string? Path, string? Host, string? Port)
{
    /// <summary>A unix socket address.</summary>
    public static NbdServerAddress Unix(string path) => new(path, null, null);

    /// <summary>An inet address; <paramref name="port"/> defaults to 10809.</summary>
    public static NbdServerAddress Inet(string host, string? port = null) =>
        new(null, host, port ?? Protocol.NbdProtocol.DefaultPort.ToString(System.Globalization.CultureInfo.InvariantCulture));

    /// <summary>True for a unix socket.</summary>
    public bool IsUnix => Path != null;

    /// <summary>How QEMU names the address in messages: the path, or <c>host:port</c>.</summary>
    public override string ToString() => Path ?? $"{Host}:{Port}";
}
