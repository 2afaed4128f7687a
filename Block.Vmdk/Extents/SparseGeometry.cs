namespace Block.Vmdk.Extents;

/// <summary>
/// The validated shape of a sparse extent, whatever header it came from (hosted "KDMV" or ESX "COWD").
/// </summary>
/// <param name="CapacitySectors">The extent's size in sectors.</param>
/// <param name="GranularitySectors">Sectors per grain.</param>
/// <param name="GrainTableEntries">Entries per grain table.</param>
/// <param name="OverheadSectors">Sectors before the first grain (metadata); grains are never placed below it.</param>
/// <param name="ZeroedGrains">True if an entry of 1 means a zeroed grain.</param>
/// <param name="Compressed">True if grains are compressed with markers (streamOptimized).</param>
/// <param name="ReadOnlyReason">Why the extent cannot be written, or null.</param>
internal sealed record SparseGeometry(
    long CapacitySectors,
    long GranularitySectors,
    int GrainTableEntries,
    long OverheadSectors,
    bool ZeroedGrains,
    bool Compressed,
    string? ReadOnlyReason)
{
    /// <summary>The grain size in bytes.</summary>
    public long GrainBytes => GranularitySectors * 512;

    /// <summary>The size of one grain table in bytes.</summary>
    public int TableBytes => GrainTableEntries * 4;
}
