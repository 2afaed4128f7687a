namespace Block.Nfs.Driver;

/// <summary>What a mount applies to its libnfs context before it connects, and how long it waits for an answer.</summary>
internal sealed record NfsSettings
{
    public required string Server { get; init; }

    public int? Uid { get; init; }

    public int? Gid { get; init; }

    public int? TcpSynCount { get; init; }

    public uint? ReadaheadBytes { get; init; }

    public uint? PageCachePages { get; init; }

    public int? Debug { get; init; }

    /// <summary>The network namespace whose network the connection uses; null: the process's.</summary>
    public string? NetworkNamespace { get; init; }

    /// <summary>How long a request may wait for the server before the mount gives up.</summary>
    public required TimeSpan RequestTimeout { get; init; }
}
