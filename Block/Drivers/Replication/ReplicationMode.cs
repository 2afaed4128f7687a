using System.Text.Json.Serialization;

namespace Block.Drivers.Replication;

/// <summary>QAPI <c>ReplicationMode</c>: which side of a COLO pair a <c>replication</c> node serves.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<ReplicationMode>))]
public enum ReplicationMode
{
    /// <summary>The primary side: the node forwards the guest's writes to the secondary (its file is an NBD client).</summary>
    [JsonStringEnumMemberName("primary")] Primary,
    /// <summary>The secondary side: the node buffers the guest's writes above the disk the primary writes into.</summary>
    [JsonStringEnumMemberName("secondary")] Secondary,
}
