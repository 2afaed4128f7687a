using Block.Options;

namespace Block.Drivers.Replication;

/// <summary>QAPI <c>BlockdevOptionsReplication</c>: a COLO replication filter over <see cref="File"/>.</summary>
public sealed record BlockdevOptionsReplication : BlockdevOptions
{
    /// <summary>Creates options for the <c>replication</c> driver.</summary>
    [System.Diagnostics.CodeAnalysis.SetsRequiredMembers]
    public BlockdevOptionsReplication()
    {
        Driver = "replication";
        File = BlockdevRef.ToNode(string.Empty);
    }

    /// <summary>
    /// The node filtered: on the primary an NBD client of the secondary's disk; on the secondary the active disk, whose
    /// backing node is the hidden disk, whose backing node is the secondary disk.
    /// </summary>
    public required BlockdevRef File { get; init; }

    /// <summary>Primary or secondary.</summary>
    public ReplicationMode Mode { get; init; }

    /// <summary>
    /// On the secondary (where it is required), the device or node at the top of the chain that holds this node: the
    /// guest's drive. The primary refuses it.
    /// </summary>
    public string? TopId { get; init; }

    /// <inheritdoc />
    public override IEnumerable<KeyValuePair<string, BlockdevRef>> ChildReferences => [new("file", File)];
}
