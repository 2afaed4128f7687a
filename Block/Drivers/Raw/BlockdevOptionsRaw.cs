using Block.Options;

namespace Block.Drivers.Raw;

/// <summary>QAPI <c>BlockdevOptionsRaw</c>: the raw format, optionally a window (<c>offset</c>, <c>size</c>) of its file.</summary>
public sealed record BlockdevOptionsRaw : BlockdevOptions
{
    /// <summary>Creates options for the <c>raw</c> driver.</summary>
    [System.Diagnostics.CodeAnalysis.SetsRequiredMembers]
    public BlockdevOptionsRaw()
    {
        Driver = "raw";
        File = BlockdevRef.ToNode(string.Empty);
    }

    /// <summary>The file child.</summary>
    public required BlockdevRef File { get; init; }

    /// <summary>Where the image starts in the file.</summary>
    public long? Offset { get; init; }

    /// <summary>The image's size (fixed).</summary>
    public long? Size { get; init; }

    /// <summary>
    /// True when the format was guessed rather than given. Writes to the first sector are then refused if they would
    /// make the image look like another format, as QEMU does: a guest must not turn its raw disk into a qcow2 header.
    /// </summary>
    public bool Probed { get; init; }

    /// <inheritdoc />
    public override IEnumerable<KeyValuePair<string, BlockdevRef>> ChildReferences => [new("file", File)];
}
