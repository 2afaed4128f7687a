namespace Block.Nfs.Options;

/// <summary>QAPI <c>NFSServer</c>: the server's address; <c>type</c> is always <c>inet</c> (TCP), the only transport.</summary>
/// <param name="Host">The server's host name or address.</param>
public sealed record NfsServer(string Host)
{
    /// <summary>The transport: <c>inet</c>.</summary>
    public string Type => "inet";
}
