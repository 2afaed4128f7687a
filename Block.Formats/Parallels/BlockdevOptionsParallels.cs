using Block.Options;

namespace Block.Formats.Parallels;

/// <summary>
/// The options of a <c>parallels</c> node: its file, a backing image, and QEMU's runtime options
/// <c>prealloc-mode</c> and <c>prealloc-size</c>, which QEMU keeps outside its QAPI schema.
/// </summary>
public sealed record BlockdevOptionsParallels : BlockdevOptions
{
    /// <summary>QEMU's default <c>prealloc-size</c>: 128 MiB.</summary>
    public const ulong DefaultPreallocSize = 128UL << 20;

    /// <summary>Creates options for <c>parallels</c>.</summary>
    [System.Diagnostics.CodeAnalysis.SetsRequiredMembers]
    public BlockdevOptionsParallels()
    {
        Driver = "parallels";
        File = BlockdevRef.ToNode(string.Empty);
    }

    /// <summary>The file child that holds the image.</summary>
    public required BlockdevRef File { get; init; }

    /// <summary>The backing image; the image records none, so only the options give one.</summary>
    public BlockdevRef? Backing { get; init; }

    /// <summary>True to open no backing image at all (<c>"backing": null</c>, or an empty <c>backing=</c>).</summary>
    public bool NoBacking { get; init; }

    /// <summary>
    /// How the file grows when a write needs clusters past its end: <see cref="ParallelsPreallocMode.Falloc"/> (zeroes
    /// written, so the host allocates them) or <see cref="ParallelsPreallocMode.Truncate"/> (a sparse extension).
    /// </summary>
    public ParallelsPreallocMode PreallocMode { get; init; } = ParallelsPreallocMode.Falloc;

    /// <summary>
    /// Bytes the file grows by beyond what a write needs (QEMU's default 128 MiB; at least one cluster, whole sectors);
    /// a clean close cuts the file back to the end of its data.
    /// </summary>
    public ulong PreallocSize { get; init; } = DefaultPreallocSize;

    /// <inheritdoc />
    public override IEnumerable<KeyValuePair<string, BlockdevRef>> ChildReferences =>
        Backing is null ? [new("file", File)] : [new("file", File), new("backing", Backing)];

    /// <summary>Reads the options from <paramref name="reader"/>.</summary>
    /// <exception cref="BlockOptionsException">A <c>prealloc-mode</c> other than <c>falloc</c> or <c>truncate</c> ("invalid parameter value", as QEMU says), or a <c>prealloc-size</c> that is not a size.</exception>
    public static BlockdevOptionsParallels Parse(OptionsReader reader, BlockdevOptionsParser parser)
    {
        var (backing, noBacking) = BlockdevOptionsGenericCowFormat.ReadBacking(reader, parser);
        string? mode = reader.String("prealloc-mode");
        return new BlockdevOptionsParallels
        {
            File = reader.RequiredRef("file", parser),
            Backing = backing,
            NoBacking = noBacking,
            PreallocSize = reader.Size("prealloc-size") ?? DefaultPreallocSize,
            PreallocMode = mode switch
            {
                null or "falloc" => ParallelsPreallocMode.Falloc,
                "truncate" => ParallelsPreallocMode.Truncate,
                _ => throw new BlockOptionsException($"invalid parameter value: {mode}"),
            },
        };
    }
}

/// <summary>How a parallels image's file grows (<c>prealloc-mode</c>).</summary>
public enum ParallelsPreallocMode
{
    /// <summary>Zeroes written over the new space (QEMU's <c>falloc</c>, the default): the host allocates it now.</summary>
    Falloc,

    /// <summary>The file extended sparsely (<c>truncate</c>).</summary>
    Truncate,
}
