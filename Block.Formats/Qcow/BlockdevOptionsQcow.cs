using Block.Options;

namespace Block.Formats.Qcow;

/// <summary>
/// QAPI <c>BlockdevOptionsQcow</c>: the file, the backing image (as <c>BlockdevOptionsGenericCOWFormat</c>) and how to
/// unlock an encrypted image (<c>encrypt.format</c>, <c>encrypt.key-secret</c>).
/// </summary>
public sealed record BlockdevOptionsQcow : BlockdevOptions
{
    /// <summary>Creates options for <c>qcow</c>.</summary>
    [System.Diagnostics.CodeAnalysis.SetsRequiredMembers]
    public BlockdevOptionsQcow()
    {
        Driver = "qcow";
        File = BlockdevRef.ToNode(string.Empty);
    }

    /// <summary>The file child that holds the image.</summary>
    public required BlockdevRef File { get; init; }

    /// <summary>The backing image instead of the one the image names; null to open that one.</summary>
    public BlockdevRef? Backing { get; init; }

    /// <summary>True to open no backing image at all (<c>"backing": null</c>, or an empty <c>backing=</c>).</summary>
    public bool NoBacking { get; init; }

    /// <summary>How to unlock an encrypted image; null for none given.</summary>
    public BlockdevQcowEncryption? Encrypt { get; init; }

    /// <inheritdoc />
    public override IEnumerable<KeyValuePair<string, BlockdevRef>> ChildReferences =>
        Backing is null ? [new("file", File)] : [new("file", File), new("backing", Backing)];

    /// <summary>Reads the options from <paramref name="reader"/>.</summary>
    public static BlockdevOptionsQcow Parse(OptionsReader reader, BlockdevOptionsParser parser)
    {
        var (backing, noBacking) = BlockdevOptionsGenericCowFormat.ReadBacking(reader, parser);
        BlockdevQcowEncryption? encrypt = null;
        if (reader.Object("encrypt") is { } outer)
        {
            // QEMU names the members without the "encrypt." prefix ("Parameter 'x' is unexpected").
            var inner = new OptionsReader(outer.Source, reader.Keyval);
            encrypt = new BlockdevQcowEncryption(inner.String("format"), inner.String("key-secret"));
            inner.Finish();
        }
        return new BlockdevOptionsQcow
        {
            File = reader.RequiredRef("file", parser),
            Backing = backing,
            NoBacking = noBacking,
            Encrypt = encrypt,
        };
    }
}
