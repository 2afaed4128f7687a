using System.Text.Json.Serialization;

namespace Block.Qapi;

/// <summary>QAPI <c>ImageInfo</c>: what <c>qemu-img info</c> reports about one image (one layer of a chain).</summary>
public sealed record ImageInfo
{
    /// <summary>The image's file name (or <c>json:{…}</c> description).</summary>
    [JsonPropertyName("filename")] public required string Filename { get; init; }

    /// <summary>The format driver's name.</summary>
    [JsonPropertyName("format")] public required string Format { get; init; }

    /// <summary>True if the image was not closed cleanly (lazy refcounts).</summary>
    [JsonPropertyName("dirty-flag")] public bool? DirtyFlag { get; init; }

    /// <summary>Bytes the image occupies on the host (allocated blocks).</summary>
    [JsonPropertyName("actual-size")] public long? ActualSize { get; init; }

    /// <summary>Size of the virtual disk in bytes.</summary>
    [JsonPropertyName("virtual-size")] public required long VirtualSize { get; init; }

    /// <summary>Cluster size in bytes, for formats with clusters.</summary>
    [JsonPropertyName("cluster-size")] public long? ClusterSize { get; init; }

    /// <summary>True if the data is encrypted.</summary>
    [JsonPropertyName("encrypted")] public bool? Encrypted { get; init; }

    /// <summary>True if the image is compressed (read-only formats such as dmg).</summary>
    [JsonPropertyName("compressed")] public bool? Compressed { get; init; }

    /// <summary>The backing file name as written in the image.</summary>
    [JsonPropertyName("backing-filename")] public string? BackingFilename { get; init; }

    /// <summary>The backing file name resolved against the image's directory.</summary>
    [JsonPropertyName("full-backing-filename")] public string? FullBackingFilename { get; init; }

    /// <summary>The backing file's format as recorded in the image.</summary>
    [JsonPropertyName("backing-filename-format")] public string? BackingFilenameFormat { get; init; }

    /// <summary>Internal snapshots.</summary>
    [JsonPropertyName("snapshots")] public IReadOnlyList<SnapshotInfo>? Snapshots { get; init; }

    /// <summary>The backing image's information, with <c>--backing-chain</c>.</summary>
    [JsonPropertyName("backing-image")] public ImageInfo? BackingImage { get; init; }

    /// <summary>Format-specific information.</summary>
    [JsonPropertyName("format-specific")] public ImageInfoSpecific? FormatSpecific { get; init; }
}

/// <summary>QAPI <c>SnapshotInfo</c>: one internal snapshot.</summary>
public sealed record SnapshotInfo
{
    /// <summary>Unique id.</summary>
    [JsonPropertyName("id")] public required string Id { get; init; }

    /// <summary>User-visible name.</summary>
    [JsonPropertyName("name")] public required string Name { get; init; }

    /// <summary>Size of the saved VM state in bytes.</summary>
    [JsonPropertyName("vm-state-size")] public long VmStateSize { get; init; }

    /// <summary>Creation time, seconds since the epoch.</summary>
    [JsonPropertyName("date-sec")] public long DateSec { get; init; }

    /// <summary>Nanoseconds part of the creation time.</summary>
    [JsonPropertyName("date-nsec")] public long DateNsec { get; init; }

    /// <summary>Guest clock, seconds.</summary>
    [JsonPropertyName("vm-clock-sec")] public long VmClockSec { get; init; }

    /// <summary>Guest clock, nanoseconds part.</summary>
    [JsonPropertyName("vm-clock-nsec")] public long VmClockNsec { get; init; }

    /// <summary>The guest's instruction counter at snapshot time (record/replay), when recorded.</summary>
    [JsonPropertyName("icount")] public long? Icount { get; init; }
}

/// <summary>
/// QAPI union <c>ImageInfoSpecific</c>: <c>{"type": …, "data": {…}}</c>. Format packages derive from it
/// (qcow2, vmdk, luks) and write their own <c>data</c> member.
/// </summary>
[JsonConverter(typeof(ImageInfoSpecificConverter))]
public abstract record ImageInfoSpecific
{
    /// <summary>The discriminator: the format name.</summary>
    [JsonIgnore] public abstract string Type { get; }

    /// <summary>Writes the <c>data</c> object's members.</summary>
    public abstract void WriteData(System.Text.Json.Utf8JsonWriter writer);
}
