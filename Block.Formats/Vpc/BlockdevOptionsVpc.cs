using Block.Options;

namespace Block.Formats.Vpc;

/// <summary>
/// The options of a <c>vpc</c> node: its file, and QEMU's runtime option <c>force_size_calc</c>, which QEMU keeps
/// outside its QAPI schema (<c>-o</c>, <c>--image-opts</c> and <c>json:</c> filenames reach it).
/// </summary>
public sealed record BlockdevOptionsVpc : BlockdevOptions
{
    /// <summary>Creates options for <c>vpc</c>.</summary>
    [System.Diagnostics.CodeAnalysis.SetsRequiredMembers]
    public BlockdevOptionsVpc()
    {
        Driver = "vpc";
        File = BlockdevRef.ToNode(string.Empty);
    }

    /// <summary>The file child that holds the image.</summary>
    public required BlockdevRef File { get; init; }

    /// <summary>
    /// <c>chs</c> to size the disk by its footer's geometry, <c>current_size</c> by its footer's size field; null to
    /// choose by the creator application, as QEMU does by default.
    /// </summary>
    /// <remarks>
    /// A string, not an enum, because QEMU checks it only when the image opens ("Invalid size calculation mode"),
    /// after the options were accepted; the value is checked there.
    /// </remarks>
    public string? ForceSizeCalc { get; init; }

    /// <inheritdoc />
    public override IEnumerable<KeyValuePair<string, BlockdevRef>> ChildReferences => [new("file", File)];

    /// <summary>Reads the options from <paramref name="reader"/>.</summary>
    public static BlockdevOptionsVpc Parse(OptionsReader reader, BlockdevOptionsParser parser) => new()
    {
        File = reader.RequiredRef("file", parser),
        ForceSizeCalc = reader.String("force_size_calc"),
    };
}
