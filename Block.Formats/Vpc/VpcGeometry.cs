namespace Block.Formats.Vpc;

/// <summary>
/// The cylinder/head/sector geometry a VHD footer records, computed by the algorithm of Microsoft's VHD
/// specification (appendix "CHS calculation"), which Virtual PC uses to derive the disk size from the geometry.
/// </summary>
/// <param name="Cylinders">Cylinders (16 bits on disk).</param>
/// <param name="Heads">Heads per cylinder.</param>
/// <param name="SectorsPerTrack">Sectors per track.</param>
internal readonly record struct VpcGeometry(ushort Cylinders, byte Heads, byte SectorsPerTrack)
{
    /// <summary>The largest geometry, 65535/16/255: images of this geometry take their size from the footer instead.</summary>
    public static VpcGeometry Max => new(65535, 16, 255);

    /// <summary>The sectors of <see cref="Max"/>: 267,382,800 (127.5 GiB).</summary>
    public const long MaxSectors = 65535L * 16 * 255;

    /// <summary>The disk size the geometry gives, in sectors.</summary>
    public long Sectors => (long)Cylinders * Heads * SectorsPerTrack;

    /// <summary>True for the 65535/16/255 geometry.</summary>
    public bool IsMax => Sectors == MaxSectors;

    /// <summary>The specification's geometry for <paramref name="totalSectors"/> (at most <see cref="MaxSectors"/>).</summary>
    public static VpcGeometry For(long totalSectors)
    {
        totalSectors = Math.Min(totalSectors, MaxSectors);
        long sectorsPerTrack, heads, cylindersTimesHeads;
        if (totalSectors >= 65535L * 16 * 63)
        {
            sectorsPerTrack = 255;
            heads = 16;
            cylindersTimesHeads = totalSectors / sectorsPerTrack;
        }
        else
        {
            sectorsPerTrack = 17;
            cylindersTimesHeads = totalSectors / sectorsPerTrack;
            heads = Math.Max(4, (cylindersTimesHeads + 1023) / 1024);
            if (cylindersTimesHeads >= heads * 1024 || heads > 16)
            {
                sectorsPerTrack = 31;
                heads = 16;
                cylindersTimesHeads = totalSectors / sectorsPerTrack;
            }
            if (cylindersTimesHeads >= heads * 1024)
            {
                sectorsPerTrack = 63;
                heads = 16;
                cylindersTimesHeads = totalSectors / sectorsPerTrack;
            }
        }
        return new((ushort)(cylindersTimesHeads / heads), (byte)heads, (byte)sectorsPerTrack);
    }

    /// <summary>
    /// The smallest geometry that holds at least <paramref name="totalSectors"/>, as qemu-img create picks it: the
    /// geometry of the size, then of one sector more, and so on until C·H·S reaches the size (or the maximum).
    /// </summary>
    public static VpcGeometry AtLeast(long totalSectors)
    {
        var geometry = default(VpcGeometry);
        for (long i = 0; totalSectors > geometry.Sectors && !geometry.IsMax; i++)
            geometry = For(totalSectors + i);
        return geometry;
    }
}
