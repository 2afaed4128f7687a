using System.Text.Json.Serialization;

namespace Block.Qapi;

/// <summary>
/// QAPI <c>BlockMeasureInfo</c>: how large a new image would be (<c>qemu-img measure</c>).
/// </summary>
/// <remarks>The sizes are unsigned in QEMU's arithmetic and printed as <c>int</c> on the wire: a raw image of
/// 2^63 − 1 bytes measures 2^63, which the JSON form shows as −2^63 and the human form as 9223372036854775808.</remarks>
public sealed record BlockMeasureInfo
{
    /// <summary>Bytes the new image needs for the data it will hold and its metadata.</summary>
    [JsonPropertyName("required")] public required long Required { get; init; }

    /// <summary>Bytes the new image takes once every cluster of the disk is allocated.</summary>
    [JsonPropertyName("fully-allocated")] public required long FullyAllocated { get; init; }

    /// <summary>Bytes the input's persistent dirty bitmaps would take in the new image (formats that store them).</summary>
    [JsonPropertyName("bitmaps")] public long? Bitmaps { get; init; }
}
