namespace Block.Gluster.Options;

/// <summary>QAPI <c>GlusterTransport</c>: how a volfile server is reached.</summary>
public enum GlusterTransport
{
    /// <summary>A Unix domain socket (<c>unix</c>).</summary>
    Unix,

    /// <summary>TCP (<c>tcp</c>).</summary>
    Tcp,
}
