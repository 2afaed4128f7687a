namespace Block.Iscsi.Session;

/// <summary>Everything needed to log in to one LUN, resolved from the node's options and secrets.</summary>
internal sealed record IscsiSessionSettings
{
    public required string Portal { get; init; }

    public required string Target { get; init; }

    public required int Lun { get; init; }

    public required string InitiatorName { get; init; }

    /// <summary>libiscsi's <c>enum iscsi_header_digest</c>.</summary>
    public required int HeaderDigest { get; init; }

    public string? User { get; init; }

    public string? Password { get; init; }

    /// <summary>Seconds a command may take; 0 for no limit.</summary>
    public int TimeoutSeconds { get; init; }
}
