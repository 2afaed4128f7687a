using System.Text.Json;
using Block.Qapi;

namespace Block.Vmdk.Info;

/// <summary>QAPI <c>ImageInfoSpecificVmdk</c>: the create type, content ids and extents of a VMDK image.</summary>
public sealed record ImageInfoSpecificVmdk : ImageInfoSpecific
{
    /// <inheritdoc />
    public override string Type => "vmdk";

    /// <summary><c>create-type</c>: the subformat (<c>monolithicSparse</c>…).</summary>
    public required string CreateType { get; init; }

    /// <summary><c>cid</c>: the content id.</summary>
    public required uint Cid { get; init; }

    /// <summary><c>parent-cid</c>: the parent's content id (4294967295 without a parent).</summary>
    public required uint ParentCid { get; init; }

    /// <summary><c>extents</c>: each extent's own image information.</summary>
    public required IReadOnlyList<ImageInfo> Extents { get; init; }

    /// <inheritdoc />
    public override void WriteData(Utf8JsonWriter writer)
    {
        writer.WriteNumber("cid", Cid);
        writer.WriteNumber("parent-cid", ParentCid);
        writer.WriteString("create-type", CreateType);
        writer.WriteStartArray("extents");
        foreach (var extent in Extents)
            JsonSerializer.Serialize(writer, extent, QapiJsonContext.Default.ImageInfo);
        writer.WriteEndArray();
    }
}
