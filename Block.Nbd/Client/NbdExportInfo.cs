namespace Block.Nbd.Client;

/// <summary>What the handshake learned about the export and the session.</summary>
public sealed record NbdExportInfo
{
    /// <summary>The export's size in bytes.</summary>
    public required long Size { get; init; }

    /// <summary>The transmission flags (<c>NBD_FLAG_*</c>).</summary>
    public required ushort Flags { get; init; }

    /// <summary>Minimum block size (0 when the server gave none).</summary>
    public uint MinBlock { get; init; }

    /// <summary>Preferred block size (0 when the server gave none).</summary>
    public uint PreferredBlock { get; init; }

    /// <summary>Maximum payload size (0 when the server gave none).</summary>
    public uint MaxBlock { get; init; }

    /// <summary>True if structured replies were negotiated.</summary>
    public bool StructuredReplies { get; init; }

    /// <summary>The id the server gave <c>base:allocation</c>, or null when the context is not available.</summary>
    public uint? BaseAllocationContext { get; init; }

    /// <summary>True if the session runs over TLS.</summary>
    public bool Tls { get; init; }

    /// <summary>True if the transmission flag <paramref name="flag"/> is set.</summary>
    public bool Has(ushort flag) => (Flags & flag) != 0;
}
