using System.Text.Json.Serialization;

namespace Block.Qapi;

/// <summary>
/// QAPI <c>MapEntry</c>: one run of <c>qemu-img map</c>, with QEMU 6.0's <c>present</c> member (7.2 prints it).
/// </summary>
public sealed record MapEntry
{
    /// <summary>Guest offset of the run.</summary>
    [JsonPropertyName("start")] public required long Start { get; init; }

    /// <summary>Length of the run in bytes.</summary>
    [JsonPropertyName("length")] public required long Length { get; init; }

    /// <summary>True if some layer of the chain holds data or zeroes for the run (not unallocated everywhere).</summary>
    [JsonPropertyName("present")] public required bool Present { get; init; }

    /// <summary>True if the run reads as zeroes.</summary>
    [JsonPropertyName("zero")] public required bool Zero { get; init; }

    /// <summary>True if the run's data is read from a file.</summary>
    [JsonPropertyName("data")] public required bool Data { get; init; }

    /// <summary>Number of backing layers above the one that holds the run.</summary>
    [JsonPropertyName("depth")] public required int Depth { get; init; }

    /// <summary>Offset in <see cref="Filename"/> where the data lives, when known.</summary>
    [JsonPropertyName("offset")] public long? Offset { get; init; }

    /// <summary>The file holding the data (human output only).</summary>
    [JsonPropertyName("filename")] public string? Filename { get; init; }
}
