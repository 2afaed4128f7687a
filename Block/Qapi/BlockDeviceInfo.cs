using System.Text.Json.Serialization;

namespace Block.Qapi;

/// <summary>QAPI <c>BlockDeviceInfo</c>: a node as <c>query-block</c> and <c>query-named-block-nodes</c> show it.</summary>
public sealed record BlockDeviceInfo
{
    /// <summary>The node's file name.</summary>
    [JsonPropertyName("file")] public required string File { get; init; }

    /// <summary>The node name.</summary>
    [JsonPropertyName("node-name")] public string? NodeName { get; init; }

    /// <summary>True if read-only.</summary>
    [JsonPropertyName("ro")] public required bool ReadOnly { get; init; }

    /// <summary>The driver's name.</summary>
    [JsonPropertyName("drv")] public required string Driver { get; init; }

    /// <summary>The backing file's name.</summary>
    [JsonPropertyName("backing_file")] public string? BackingFile { get; init; }

    /// <summary>Number of images in the backing chain below this one.</summary>
    [JsonPropertyName("backing_file_depth")] public required int BackingFileDepth { get; init; }

    /// <summary>True if the data is encrypted.</summary>
    [JsonPropertyName("encrypted")] public required bool Encrypted { get; init; }

    /// <summary>True if an encryption key is still needed.</summary>
    [JsonPropertyName("encryption_key_missing")] public required bool EncryptionKeyMissing { get; init; }

    /// <summary>Zero detection mode.</summary>
    [JsonPropertyName("detect_zeroes")] public required BlockdevDetectZeroesOptions DetectZeroes { get; init; }

    /// <summary>Total throughput limit, bytes/s (0 = none).</summary>
    [JsonPropertyName("bps")] public long Bps { get; init; }

    /// <summary>Read throughput limit.</summary>
    [JsonPropertyName("bps_rd")] public long BpsRd { get; init; }

    /// <summary>Write throughput limit.</summary>
    [JsonPropertyName("bps_wr")] public long BpsWr { get; init; }

    /// <summary>Total operations limit, per second.</summary>
    [JsonPropertyName("iops")] public long Iops { get; init; }

    /// <summary>Read operations limit.</summary>
    [JsonPropertyName("iops_rd")] public long IopsRd { get; init; }

    /// <summary>Write operations limit.</summary>
    [JsonPropertyName("iops_wr")] public long IopsWr { get; init; }

    /// <summary>Total throughput burst rate, when set.</summary>
    [JsonPropertyName("bps_max")] public long? BpsMax { get; init; }

    /// <summary>Read throughput burst rate, when set.</summary>
    [JsonPropertyName("bps_rd_max")] public long? BpsRdMax { get; init; }

    /// <summary>Write throughput burst rate, when set.</summary>
    [JsonPropertyName("bps_wr_max")] public long? BpsWrMax { get; init; }

    /// <summary>Total operations burst rate, when set.</summary>
    [JsonPropertyName("iops_max")] public long? IopsMax { get; init; }

    /// <summary>Read operations burst rate, when set.</summary>
    [JsonPropertyName("iops_rd_max")] public long? IopsRdMax { get; init; }

    /// <summary>Write operations burst rate, when set.</summary>
    [JsonPropertyName("iops_wr_max")] public long? IopsWrMax { get; init; }

    /// <summary>Seconds a <c>bps_max</c> burst may last, shown with it.</summary>
    [JsonPropertyName("bps_max_length")] public long? BpsMaxLength { get; init; }

    /// <summary>Seconds a <c>bps_rd_max</c> burst may last, shown with it.</summary>
    [JsonPropertyName("bps_rd_max_length")] public long? BpsRdMaxLength { get; init; }

    /// <summary>Seconds a <c>bps_wr_max</c> burst may last, shown with it.</summary>
    [JsonPropertyName("bps_wr_max_length")] public long? BpsWrMaxLength { get; init; }

    /// <summary>Seconds an <c>iops_max</c> burst may last, shown with it.</summary>
    [JsonPropertyName("iops_max_length")] public long? IopsMaxLength { get; init; }

    /// <summary>Seconds an <c>iops_rd_max</c> burst may last, shown with it.</summary>
    [JsonPropertyName("iops_rd_max_length")] public long? IopsRdMaxLength { get; init; }

    /// <summary>Seconds an <c>iops_wr_max</c> burst may last, shown with it.</summary>
    [JsonPropertyName("iops_wr_max_length")] public long? IopsWrMaxLength { get; init; }

    /// <summary>Bytes counted as one operation, when set.</summary>
    [JsonPropertyName("iops_size")] public long? IopsSize { get; init; }

    /// <summary>The image's information.</summary>
    [JsonPropertyName("image")] public required ImageInfo Image { get; init; }

    /// <summary>Throttle group name, when throttled.</summary>
    [JsonPropertyName("group")] public string? Group { get; init; }

    /// <summary>Cache mode.</summary>
    [JsonPropertyName("cache")] public required BlockdevCacheInfo Cache { get; init; }

    /// <summary>Write threshold in bytes (0 = none).</summary>
    [JsonPropertyName("write_threshold")] public long WriteThreshold { get; init; }

    /// <summary>The node's dirty bitmaps, newest first (QEMU 4.2+; absent when it has none).</summary>
    [JsonPropertyName("dirty-bitmaps")] public IReadOnlyList<BlockDirtyInfo>? DirtyBitmaps { get; init; }
}

/// <summary>QAPI <c>BlockdevCacheInfo</c>.</summary>
public sealed record BlockdevCacheInfo
{
    /// <summary>True if writes complete before reaching stable storage (always true for Block, as for QEMU 2.9+ nodes).</summary>
    [JsonPropertyName("writeback")] public required bool Writeback { get; init; }

    /// <summary>True if the host page cache is bypassed (O_DIRECT).</summary>
    [JsonPropertyName("direct")] public required bool Direct { get; init; }

    /// <summary>True if flush requests are ignored.</summary>
    [JsonPropertyName("no-flush")] public required bool NoFlush { get; init; }
}

/// <summary>QAPI <c>BlockInfo</c>: a backend (device) as <c>query-block</c> shows it.</summary>
public sealed record BlockInfo
{
    /// <summary>The backend's name.</summary>
    [JsonPropertyName("device")] public required string Device { get; init; }

    /// <summary>Historical, always "unknown".</summary>
    [JsonPropertyName("type")] public string Type { get; init; } = "unknown";

    /// <summary>True if the medium can be removed.</summary>
    [JsonPropertyName("removable")] public required bool Removable { get; init; }

    /// <summary>True if the guest locked the medium.</summary>
    [JsonPropertyName("locked")] public required bool Locked { get; init; }

    /// <summary>The inserted medium, if any.</summary>
    [JsonPropertyName("inserted")] public BlockDeviceInfo? Inserted { get; init; }

    /// <summary>True if the tray is open.</summary>
    [JsonPropertyName("tray_open")] public bool? TrayOpen { get; init; }

    /// <summary>I/O status, when an error policy can stop the device.</summary>
    [JsonPropertyName("io-status")] public BlockDeviceIoStatus? IoStatus { get; init; }

    /// <summary>Dirty bitmaps of the root node.</summary>
    [JsonPropertyName("dirty-bitmaps")] public IReadOnlyList<BlockDirtyInfo>? DirtyBitmaps { get; init; }
}

/// <summary>QAPI <c>BlockDirtyInfo</c>.</summary>
public sealed record BlockDirtyInfo
{
    /// <summary>Bitmap name.</summary>
    [JsonPropertyName("name")] public string? Name { get; init; }

    /// <summary>Dirty bytes.</summary>
    [JsonPropertyName("count")] public required long Count { get; init; }

    /// <summary>Bytes per bit.</summary>
    [JsonPropertyName("granularity")] public required uint Granularity { get; init; }

    /// <summary>Status.</summary>
    [JsonPropertyName("status")] public required DirtyBitmapStatus Status { get; init; }

    /// <summary>True if the bitmap records writes (QEMU 4.0+).</summary>
    [JsonPropertyName("recording")] public bool? Recording { get; init; }

    /// <summary>True if an operation holds the bitmap (QEMU 4.0+).</summary>
    [JsonPropertyName("busy")] public bool? Busy { get; init; }

    /// <summary>True if the image stores the bitmap (QEMU 4.0+).</summary>
    [JsonPropertyName("persistent")] public bool? Persistent { get; init; }

    /// <summary>Present and true if the stored bitmap was found in use and cannot be trusted (QEMU 4.0+).</summary>
    [JsonPropertyName("inconsistent")] public bool? Inconsistent { get; init; }
}
