using System.Text.Json;
using System.Text.Json.Serialization;

namespace Block.Qapi;

/// <summary>Writes an <see cref="ImageInfoSpecific"/> as QAPI's flat union <c>{"type": …, "data": {…}}</c>.</summary>
public sealed class ImageInfoSpecificConverter : JsonConverter<ImageInfoSpecific>
{
    /// <inheritdoc />
    public override ImageInfoSpecific Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        throw new NotSupportedException("ImageInfoSpecific is produced by format drivers, not parsed.");

    /// <inheritdoc />
    public override void Write(Utf8JsonWriter writer, ImageInfoSpecific value, JsonSerializerOptions options)
    {
        writer.WriteStartObject();
        writer.WriteString("type", value.Type);
        writer.WriteStartObject("data");
        value.WriteData(writer);
        writer.WriteEndObject();
        writer.WriteEndObject();
    }
}
