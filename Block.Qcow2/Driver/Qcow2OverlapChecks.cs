using System.Text.Json.Serialization;

namespace Block.Qcow2.Driver;

/// <summary>QAPI <c>Qcow2OverlapCheckMode</c>: templates of structures to protect.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<Qcow2OverlapCheckMode>))]
public enum Qcow2OverlapCheckMode
{
    /// <summary>No checks.</summary>
    [JsonStringEnumMemberName("none")] None,
    /// <summary>Structures at fixed places: header, active L1, refcount table, snapshot table, bitmap directory.</summary>
    [JsonStringEnumMemberName("constant")] Constant,
    /// <summary>Everything known without I/O: constant plus active L2 tables, refcount blocks, inactive L1 tables (the default).</summary>
    [JsonStringEnumMemberName("cached")] Cached,
    /// <summary>Everything, including inactive L2 tables (reads snapshot L1 tables for every check).</summary>
    [JsonStringEnumMemberName("all")] All,
}

/// <summary>The metadata structures overlap checks know (QEMU's <c>QCOW2_OL_*</c> bits).</summary>
[Flags]
public enum Qcow2OverlapFlags
{
    /// <summary>None.</summary>
    None = 0,
    /// <summary>The header cluster.</summary>
    MainHeader = 1 << 0,
    /// <summary>The active L1 table.</summary>
    ActiveL1 = 1 << 1,
    /// <summary>L2 tables the active L1 points at.</summary>
    ActiveL2 = 1 << 2,
    /// <summary>The refcount table.</summary>
    RefcountTable = 1 << 3,
    /// <summary>Refcount blocks.</summary>
    RefcountBlock = 1 << 4,
    /// <summary>The snapshot table.</summary>
    SnapshotTable = 1 << 5,
    /// <summary>Snapshots' L1 tables.</summary>
    InactiveL1 = 1 << 6,
    /// <summary>L2 tables only snapshots use.</summary>
    InactiveL2 = 1 << 7,
    /// <summary>The bitmap directory.</summary>
    BitmapDirectory = 1 << 8,
    /// <summary>The <c>constant</c> template.</summary>
    Constant = MainHeader | ActiveL1 | RefcountTable | SnapshotTable | BitmapDirectory,
    /// <summary>The <c>cached</c> template.</summary>
    Cached = Constant | ActiveL2 | RefcountBlock | InactiveL1,
    /// <summary>The <c>all</c> template.</summary>
    All = Cached | InactiveL2,
}

/// <summary>QAPI alternate <c>Qcow2OverlapChecks</c>: a template name, or a template with per-structure switches.</summary>
public sealed record Qcow2OverlapChecks
{
    /// <summary>The template (default <c>cached</c>).</summary>
    public Qcow2OverlapCheckMode? Template { get; init; }

    /// <summary>Per-structure overrides of the template.</summary>
    public IReadOnlyDictionary<Qcow2OverlapFlags, bool> Overrides { get; init; } = new Dictionary<Qcow2OverlapFlags, bool>();

    /// <summary>The structures checked.</summary>
    public Qcow2OverlapFlags Resolve()
    {
        var flags = (Template ?? Qcow2OverlapCheckMode.Cached) switch
        {
            Qcow2OverlapCheckMode.None => Qcow2OverlapFlags.None,
            Qcow2OverlapCheckMode.Constant => Qcow2OverlapFlags.Constant,
            Qcow2OverlapCheckMode.All => Qcow2OverlapFlags.All,
            _ => Qcow2OverlapFlags.Cached,
        };
        foreach (var (flag, on) in Overrides)
            flags = on ? flags | flag : flags & ~flag;
        return flags;
    }

    /// <summary>Option names of the per-structure switches.</summary>
    public static readonly IReadOnlyList<(string Name, Qcow2OverlapFlags Flag)> Names =
    [
        ("main-header", Qcow2OverlapFlags.MainHeader),
        ("active-l1", Qcow2OverlapFlags.ActiveL1),
        ("active-l2", Qcow2OverlapFlags.ActiveL2),
        ("refcount-table", Qcow2OverlapFlags.RefcountTable),
        ("refcount-block", Qcow2OverlapFlags.RefcountBlock),
        ("snapshot-table", Qcow2OverlapFlags.SnapshotTable),
        ("inactive-l1", Qcow2OverlapFlags.InactiveL1),
        ("inactive-l2", Qcow2OverlapFlags.InactiveL2),
        ("bitmap-directory", Qcow2OverlapFlags.BitmapDirectory),
    ];

    /// <summary>QEMU's name for one structure, as "overlaps with …" messages say it.</summary>
    public static string Describe(Qcow2OverlapFlags flag) => flag switch
    {
        Qcow2OverlapFlags.MainHeader => "qcow2_header",
        Qcow2OverlapFlags.ActiveL1 => "active L1 table",
        Qcow2OverlapFlags.ActiveL2 => "active L2 table",
        Qcow2OverlapFlags.RefcountTable => "refcount table",
        Qcow2OverlapFlags.RefcountBlock => "refcount block",
        Qcow2OverlapFlags.SnapshotTable => "snapshot table",
        Qcow2OverlapFlags.InactiveL1 => "inactive L1 table",
        Qcow2OverlapFlags.InactiveL2 => "inactive L2 table",
        Qcow2OverlapFlags.BitmapDirectory => "bitmap directory",
        _ => flag.ToString(),
    };
}
