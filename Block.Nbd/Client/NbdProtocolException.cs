namespace Block.Nbd.Client;

/// <summary>A reply that breaks the protocol; the client ends the connection on it.</summary>
internal sealed class NbdProtocolException : Exception
{
    public NbdProtocolException(string message)
        : base(message)
    {
    }
}
