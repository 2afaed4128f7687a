using Block.Qapi;

namespace Block.Graph;

/// <summary>How a backend (device) is attached to its root node.</summary>
public sealed record BlockBackendOptions
{
    /// <summary>The backend's name (QAPI <c>device</c>); empty for anonymous backends.</summary>
    public string Name { get; init; } = string.Empty;

    /// <summary>Permissions the backend takes on its root; by default read, plus write unless the root is read-only.</summary>
    public BlockPermissions? Permissions { get; init; }

    /// <summary>Permissions the backend lets other users of the root have; by default all.</summary>
    public BlockPermissions SharedPermissions { get; init; } = BlockPermissions.All;

    /// <summary>What a failed read does (QEMU's default: report).</summary>
    public BlockdevOnError ReadErrorPolicy { get; init; } = BlockdevOnError.Report;

    /// <summary>What a failed write or flush does (QEMU's default: stop on ENOSPC, report the rest).</summary>
    public BlockdevOnError WriteErrorPolicy { get; init; } = BlockdevOnError.Enospc;

    /// <summary>Whether requests are accounted: on for devices, off for tools and jobs (as in QEMU, where only device models account).</summary>
    /// <remarks>Accounting reads the clock twice per request for its latency totals: about 86 ns on this kind of
    /// virtual machine (kvm-clock), 15% of a page-cached 4 KiB read.</remarks>
    public bool Accounting { get; init; } = true;

    /// <summary>Timed statistics intervals, in seconds.</summary>
    public IReadOnlyList<long> StatsIntervals { get; init; } = [];

    /// <summary>Whether the backend reports an io-status (devices whose model supports it).</summary>
    public bool IoStatusEnabled { get; init; }

    /// <summary>
    /// Write-through: every write completes only once it is on stable storage (QEMU's <c>cache.writeback=off</c>,
    /// the <c>writethrough</c> and <c>directsync</c> cache modes). Writes then carry FUA.
    /// </summary>
    public bool WriteThrough { get; init; }

    /// <summary>Whether writes may extend past the root's end (used when a format writes a new image).</summary>
    public bool AllowWriteBeyondEof { get; init; }

    /// <summary>I/O limits (QEMU's <c>throttling.*</c> drive options); null or without averages for none.</summary>
    public Throttle.ThrottleConfig? Throttle { get; init; }

    /// <summary>The throttle group to join (<c>throttling.group</c>); the backend's name when null.</summary>
    public string? ThrottleGroup { get; init; }
}
