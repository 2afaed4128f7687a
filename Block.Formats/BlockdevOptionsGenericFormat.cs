using Block.Options;

namespace Block.Formats;

/// <summary>
/// QAPI <c>BlockdevOptionsGenericFormat</c>: the options of a format whose only child is its file (vdi, vpc, bochs,
/// cloop, dmg…).
/// </summary>
public sealed record BlockdevOptionsGenericFormat : BlockdevOptions
{
    /// <summary>Creates options for the format <paramref name="driver"/>.</summary>
    [System.Diagnostics.CodeAnalysis.SetsRequiredMembers]
    public BlockdevOptionsGenericFormat(string driver)
    {
        Driver = driver;
        File = BlockdevRef.ToNode(string.Empty);
    }

    /// <summary>The file child that holds the image.</summary>
    public required BlockdevRef File { get; init; }

    /// <inheritdoc />
    public override IEnumerable<KeyValuePair<string, BlockdevRef>> ChildReferences => [new("file", File)];
}
