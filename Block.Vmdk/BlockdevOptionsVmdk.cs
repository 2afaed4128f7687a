using Block.Options;

namespace Block.Vmdk;

/// <summary>QAPI <c>BlockdevOptionsGenericCOWFormat</c> for the <c>vmdk</c> driver: the file, and optionally the backing image.</summary>
public sealed record BlockdevOptionsVmdk : BlockdevOptions
{
    /// <summary>Creates options for the <c>vmdk</c> driver.</summary>
    [System.Diagnostics.CodeAnalysis.SetsRequiredMembers]
    public BlockdevOptionsVmdk()
    {
        Driver = "vmdk";
        File = BlockdevRef.ToNode(string.Empty);
    }

    /// <summary>The file child: the descriptor file, or the whole image for monolithic sparse and streamOptimized disks.</summary>
    public required BlockdevRef File { get; init; }

    /// <summary>
    /// The backing image instead of the one the descriptor's <c>parentFileNameHint</c> names; null to open that one.
    /// </summary>
    public BlockdevRef? Backing { get; init; }

    /// <summary>True to open no backing image at all (<c>"backing": null</c> or an empty name).</summary>
    public bool NoBacking { get; init; }

    /// <inheritdoc />
    public override IEnumerable<KeyValuePair<string, BlockdevRef>> ChildReferences =>
        Backing is null ? [new("file", File)] : [new("file", File), new("backing", Backing)];
}
