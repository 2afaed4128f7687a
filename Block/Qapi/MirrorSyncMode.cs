using System.Text.Json.Serialization;

namespace Block.Qapi;

/// <summary>QAPI <c>MirrorSyncMode</c>: what a backup (or mirror) copies.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<MirrorSyncMode>))]
public enum MirrorSyncMode
{
    /// <summary>Only what the top image holds; the target's backing file supplies the rest.</summary>
    [JsonStringEnumMemberName("top")] Top,
    /// <summary>The whole disk.</summary>
    [JsonStringEnumMemberName("full")] Full,
    /// <summary>Nothing in the background: only the old content of what guests overwrite (image fleecing).</summary>
    [JsonStringEnumMemberName("none")] None,
    /// <summary>What a dirty bitmap marks (incremental backup).</summary>
    [JsonStringEnumMemberName("incremental")] Incremental,
}
