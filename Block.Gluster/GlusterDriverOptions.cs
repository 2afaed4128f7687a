namespace Block.Gluster;

/// <summary>How the <c>gluster</c> driver reaches its volumes and how long it waits for them; the defaults suit most hosts.</summary>
public sealed class GlusterDriverOptions
{
    /// <summary>QEMU has no limit; ours.</summary>
    public static readonly TimeSpan DefaultRequestTimeout = TimeSpan.FromSeconds(60);

    /// <summary>
    /// How long one request (or the connect, or a blocking call such as a truncate) may wait for the volume before the
    /// node gives up: every request in flight and every later one fails with EIO until the node is reopened.
    /// </summary>
    /// <remarks>
    /// A brick that dies outright closes its socket, and gfapi fails its requests at once. One that stops answering
    /// with its socket open is waited for until gfapi's frame timeout, 30 minutes by default; this limit bounds that.
    /// A minute lets a brick restart (one starts in well under a second here) while bounding the wait.
    /// </remarks>
    public TimeSpan RequestTimeout { get; init; } = DefaultRequestTimeout;

    /// <summary>
    /// A network namespace (<c>/run/netns/NAME</c>, <c>/proc/PID/ns/net</c>) whose network the nodes' connections use;
    /// null uses the process's. Entering one needs <c>CAP_SYS_ADMIN</c>.
    /// </summary>
    /// <remarks>
    /// Each connection's gfapi instance is made on a thread that enters the namespace first, and gfapi's own threads,
    /// which open every socket after that (glusterd, the bricks, reconnections), start from it and inherit it; the rest
    /// of the process stays where it is. This lets a host keep its storage network apart, as the tests keep a
    /// throwaway glusterd.
    /// </remarks>
    public string? NetworkNamespace { get; init; }
}
