using Block.Gluster.Options;

namespace Block.Gluster.Driver;

/// <summary>What a connection hands gfapi before <c>glfs_init</c>, and how long it waits for an answer.</summary>
internal sealed record GlusterSettings
{
    public required string Volume { get; init; }

    /// <summary>The image's path in the volume, for messages.</summary>
    public required string Path { get; init; }

    public required IReadOnlyList<GlusterServer> Servers { get; init; }

    public required int Debug { get; init; }

    public required string Logfile { get; init; }

    /// <summary>The network namespace whose network the connection uses; null: the process's.</summary>
    public string? NetworkNamespace { get; init; }

    /// <summary>How long a request may wait for the servers before the connection gives up.</summary>
    public required TimeSpan RequestTimeout { get; init; }
}
