using Block.Options;

namespace Block.Gluster.Options;

/// <summary>QAPI <c>BlockdevOptionsGluster</c>: an image on a GlusterFS volume, reached with libgfapi.</summary>
public sealed record BlockdevOptionsGluster : BlockdevOptions
{
    /// <summary>QEMU's default <c>debug</c>: 4, gfapi's "error".</summary>
    public const int DefaultDebug = 4;

    /// <summary>QEMU's largest <c>debug</c>: 9, gfapi's "trace".</summary>
    public const int MaxDebug = 9;

    /// <summary>QEMU's default <c>logfile</c>: <c>-</c>, which gfapi takes as standard error.</summary>
    public const string DefaultLogfile = "-";

    /// <summary>Creates options for the <c>gluster</c> driver.</summary>
    [System.Diagnostics.CodeAnalysis.SetsRequiredMembers]
    public BlockdevOptionsGluster()
    {
        Driver = "gluster";
        Volume = string.Empty;
        Path = string.Empty;
        Server = [];
    }

    /// <summary>The volume's name.</summary>
    public required string Volume { get; init; }

    /// <summary>The image's path in the volume.</summary>
    public required string Path { get; init; }

    /// <summary>The volfile servers, tried in order: gfapi fails over to the next when one does not answer.</summary>
    public required IReadOnlyList<GlusterServer> Server { get; init; }

    /// <summary>gfapi's log level, 0 to 9 (larger is capped at 9 with a warning); null is 4 (errors).</summary>
    public long? Debug { get; init; }

    /// <summary>gfapi's log file; null is <c>-</c>, standard error.</summary>
    public string? Logfile { get; init; }
}
