using Block.Options;

namespace Block.Formats;

/// <summary>
/// QAPI <c>BlockdevOptionsGenericCOWFormat</c>: the options of a format whose children are its file and, optionally,
/// a backing image (qed, qcow…).
/// </summary>
public sealed record BlockdevOptionsGenericCowFormat : BlockdevOptions
{
    /// <summary>Creates options for the format <paramref name="driver"/>.</summary>
    [System.Diagnostics.CodeAnalysis.SetsRequiredMembers]
    public BlockdevOptionsGenericCowFormat(string driver)
    {
        Driver = driver;
        File = BlockdevRef.ToNode(string.Empty);
    }

    /// <summary>The file child that holds the image.</summary>
    public required BlockdevRef File { get; init; }

    /// <summary>The backing image instead of the one the image names; null to open that one.</summary>
    public BlockdevRef? Backing { get; init; }

    /// <summary>True to open no backing image at all (<c>"backing": null</c>, or an empty <c>backing=</c>).</summary>
    public bool NoBacking { get; init; }

    /// <inheritdoc />
    public override IEnumerable<KeyValuePair<string, BlockdevRef>> ChildReferences =>
        Backing is null ? [new("file", File)] : [new("file", File), new("backing", Backing)];

    /// <summary>Reads the options of <paramref name="driver"/> from <paramref name="reader"/>.</summary>
    public static BlockdevOptionsGenericCowFormat Parse(string driver, OptionsReader reader, BlockdevOptionsParser parser)
    {
        var (backing, noBacking) = ReadBacking(reader, parser);
        return new BlockdevOptionsGenericCowFormat(driver)
        {
            File = reader.RequiredRef("file", parser),
            Backing = backing,
            NoBacking = noBacking,
        };
    }

    /// <summary>
    /// Reads <c>backing</c>: a reference, or null (JSON <c>null</c>, or an empty keyval <c>backing=</c>) for no backing
    /// image at all; the formats with a backing child share this.
    /// </summary>
    internal static (BlockdevRef? Backing, bool NoBacking) ReadBacking(OptionsReader reader, BlockdevOptionsParser parser)
    {
        if (reader.Source.TryGetPropertyValue("backing", out var node)
            && (node is null || (reader.Keyval && node is System.Text.Json.Nodes.JsonValue v
                && v.GetValueKind() == System.Text.Json.JsonValueKind.String && v.GetValue<string>().Length == 0)))
        {
            reader.Skip("backing");
            return (null, true);
        }
        return (reader.Ref("backing", parser), false);
    }
}
