namespace Block.Ssh.Options;

/// <summary>Where the SSH server listens: QAPI <c>InetSocketAddress</c>'s host and port (the port as text, as QAPI has it).</summary>
/// <param name="Host">The host name or address (IPv6 without brackets).</param>
/// <param name="Port">The port or service; <c>22</c> unless given.</param>
public sealed record SshServerAddress(string Host, string Port = "22")
{
    /// <summary>How QEMU names the address in messages and file names: <c>host:port</c>.</summary>
    public override string ToString() => $"{Host}:{Port}";
}
