using System.Text.Json;

namespace Block.Qcow2.Bitmaps;

/// <summary>QAPI <c>Qcow2BitmapInfo</c>: one stored bitmap as <c>qemu-img info</c> lists it.</summary>
public sealed record Qcow2BitmapInfo
{
    /// <summary>The bitmap's name.</summary>
    public required string Name { get; init; }

    /// <summary>Bytes per bit.</summary>
    public required long Granularity { get; init; }

    /// <summary>The stored flags by their QAPI names (<c>in-use</c>, <c>auto</c>), in that order.</summary>
    public required IReadOnlyList<string> Flags { get; init; }

    /// <summary>Writes the members in schema order (printers reorder them as QEMU does).</summary>
    public void Write(Utf8JsonWriter writer)
    {
        writer.WriteStartObject();
        writer.WriteString("name", Name);
        writer.WriteNumber("granularity", Granularity);
        writer.WriteStartArray("flags");
        foreach (var flag in Flags)
            writer.WriteStringValue(flag);
        writer.WriteEndArray();
        writer.WriteEndObject();
    }
}
