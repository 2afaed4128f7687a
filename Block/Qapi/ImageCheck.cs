using System.Text.Json.Serialization;

namespace Block.Qapi;

/// <summary>QAPI <c>ImageCheck</c>: the result of a consistency check.</summary>
public sealed record ImageCheck
{
    /// <summary>The image's file name.</summary>
    [JsonPropertyName("filename")] public required string Filename { get; init; }

    /// <summary>The format driver's name.</summary>
    [JsonPropertyName("format")] public required string Format { get; init; }

    /// <summary>Errors that stopped the check from completing.</summary>
    [JsonPropertyName("check-errors")] public long CheckErrors { get; init; }

    /// <summary>Offset of the last byte in use.</summary>
    [JsonPropertyName("image-end-offset")] public long? ImageEndOffset { get; init; }

    /// <summary>Corruptions found.</summary>
    [JsonPropertyName("corruptions")] public long? Corruptions { get; init; }

    /// <summary>Leaked clusters found.</summary>
    [JsonPropertyName("leaks")] public long? Leaks { get; init; }

    /// <summary>Corruptions repaired.</summary>
    [JsonPropertyName("corruptions-fixed")] public long? CorruptionsFixed { get; init; }

    /// <summary>Leaks repaired.</summary>
    [JsonPropertyName("leaks-fixed")] public long? LeaksFixed { get; init; }

    /// <summary>Virtual clusters.</summary>
    [JsonPropertyName("total-clusters")] public long? TotalClusters { get; init; }

    /// <summary>Allocated clusters.</summary>
    [JsonPropertyName("allocated-clusters")] public long? AllocatedClusters { get; init; }

    /// <summary>Allocated clusters not contiguous with their predecessor.</summary>
    [JsonPropertyName("fragmented-clusters")] public long? FragmentedClusters { get; init; }

    /// <summary>Compressed clusters.</summary>
    [JsonPropertyName("compressed-clusters")] public long? CompressedClusters { get; init; }
}
