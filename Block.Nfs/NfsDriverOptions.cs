namespace Block.Nfs;

/// <summary>How the <c>nfs</c> driver reaches its servers and how long it waits for them; the defaults suit most hosts.</summary>
public sealed class NfsDriverOptions
{
    /// <summary>QEMU has no limit; ours.</summary>
    public static readonly TimeSpan DefaultRequestTimeout = TimeSpan.FromSeconds(60);

    /// <summary>
    /// How long one request may wait for the server before the node gives up on it: the connection is dropped, and
    /// every request in flight and every later one fails with EIO until the node is reopened.
    /// </summary>
    /// <remarks>
    /// libnfs 4.0 waits for an answer forever and reconnects to a server that went away for as long as it takes, so
    /// without a limit a dead server hangs the guest's I/O (QEMU 7.2 hangs so). A minute lets a server restart
    /// (ganesha starts in about a second here) while bounding the wait.
    /// </remarks>
    public TimeSpan RequestTimeout { get; init; } = DefaultRequestTimeout;

    /// <summary>
    /// A network namespace (<c>/run/netns/NAME</c>, <c>/proc/PID/ns/net</c>) whose network the nodes' connections use;
    /// null uses the process's. Entering one needs <c>CAP_SYS_ADMIN</c>.
    /// </summary>
    /// <remarks>
    /// Each mount's event-loop thread enters the namespace before libnfs opens a socket, and every socket of the mount
    /// (portmapper, mountd, nfsd, reconnections) is opened on that thread; the rest of the process stays where it is.
    /// This lets a host keep its storage network, portmapper on port 111 included, apart from its own, as the tests
    /// keep a throwaway ganesha and rpcbind.
    /// </remarks>
    public string? NetworkNamespace { get; init; }
}
