using System.Text.Json.Serialization;

namespace Block.Drivers.Replication;

/// <summary>
/// QAPI <c>ReplicationStatus</c> (QMP <c>query-xen-replication-status</c>): whether replication in a graph is in
/// error, and why.
/// </summary>
/// <param name="Error">True if a replication node has not started, has failed, or is failing over.</param>
/// <param name="Desc">QEMU 7.2's words for the first such node: "Block replication is not running" or "I/O error occurred".</param>
public sealed record ReplicationStatus(
    [property: JsonPropertyName("error")] bool Error,
    [property: JsonPropertyName("desc"), JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] string? Desc = null);
