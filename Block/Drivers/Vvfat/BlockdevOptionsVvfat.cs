using Block.Options;

namespace Block.Drivers.Vvfat;

/// <summary>QAPI <c>BlockdevOptionsVVFAT</c>: a host directory presented as a FAT disk.</summary>
public sealed record BlockdevOptionsVvfat : BlockdevOptions
{
    /// <summary>Creates options for the <c>vvfat</c> driver.</summary>
    [System.Diagnostics.CodeAnalysis.SetsRequiredMembers]
    public BlockdevOptionsVvfat()
    {
        Driver = "vvfat";
        Dir = string.Empty;
    }

    /// <summary>The host directory to present.</summary>
    public required string Dir { get; init; }

    /// <summary>12, 16 or 32; null or 0 for the default (16 on a hard disk, 12 on a floppy).</summary>
    public long? FatType { get; init; }

    /// <summary>A floppy (no partition table; 2.88 MB, or 1.44 MB with FAT12 asked for) instead of a hard disk.</summary>
    public bool? Floppy { get; init; }

    /// <summary>The volume label, at most 11 bytes (default <c>QEMU VVFAT</c>).</summary>
    public string? Label { get; init; }

    /// <summary>Writable: writes go to a temporary overlay and are committed back to the directory whenever the volume they leave is consistent.</summary>
    public bool? Rw { get; init; }

    /// <summary>
    /// True when the options came from a <c>fat:…</c> file name, whose node QEMU names with all five members
    /// (<c>fat-type</c> 0 when not given) rather than with the members given.
    /// </summary>
    public bool FromFilename { get; init; }
}
