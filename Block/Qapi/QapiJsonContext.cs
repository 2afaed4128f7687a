using System.Text.Json.Serialization;

namespace Block.Qapi;

/// <summary>Source-generated System.Text.Json metadata for the QAPI records (trim and AOT safe).</summary>
[JsonSourceGenerationOptions(DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(ImageInfo))]
[JsonSerializable(typeof(ImageInfoSpecific))]
[JsonSerializable(typeof(MapEntry))]
[JsonSerializable(typeof(ImageCheck))]
[JsonSerializable(typeof(BlockMeasureInfo))]
[JsonSerializable(typeof(BlockDeviceInfo))]
[JsonSerializable(typeof(BlockInfo))]
[JsonSerializable(typeof(BlockStats))]
[JsonSerializable(typeof(IReadOnlyList<BlockInfo>))]
[JsonSerializable(typeof(IReadOnlyList<BlockStats>))]
[JsonSerializable(typeof(IReadOnlyList<BlockDeviceInfo>))]
[JsonSerializable(typeof(IReadOnlyList<MapEntry>))]
[JsonSerializable(typeof(IReadOnlyList<BlockJobInfo>))]
public sealed partial class QapiJsonContext : JsonSerializerContext
{
}
