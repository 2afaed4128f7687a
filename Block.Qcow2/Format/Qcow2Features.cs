namespace Block.Qcow2.Format;

/// <summary>Incompatible feature bits: an implementation that does not know one must refuse the image.</summary>
[Flags]
public enum IncompatibleFeatures : ulong
{
    /// <summary>No bits.</summary>
    None = 0,
    /// <summary>Refcounts may be stale (lazy refcounts); they are rebuilt before being trusted.</summary>
    Dirty = 1UL << 0,
    /// <summary>The image is corrupt; it may be written only to repair it.</summary>
    Corrupt = 1UL << 1,
    /// <summary>Guest data lives in an external data file.</summary>
    ExternalDataFile = 1UL << 2,
    /// <summary>The compression type field is not deflate.</summary>
    CompressionType = 1UL << 3,
    /// <summary>L2 entries are 128 bits with subcluster bitmaps.</summary>
    ExtendedL2 = 1UL << 4,
    /// <summary>Every bit this implementation knows.</summary>
    Known = Dirty | Corrupt | ExternalDataFile | CompressionType | ExtendedL2,
}

/// <summary>Compatible feature bits: safe to ignore when unknown.</summary>
[Flags]
public enum CompatibleFeatures : ulong
{
    /// <summary>No bits.</summary>
    None = 0,
    /// <summary>Refcount updates may be postponed (the dirty bit marks images whose refcounts are stale).</summary>
    LazyRefcounts = 1UL << 0,
}

/// <summary>Autoclear feature bits: cleared by any writer that does not know them.</summary>
[Flags]
public enum AutoclearFeatures : ulong
{
    /// <summary>No bits.</summary>
    None = 0,
    /// <summary>The bitmaps extension is consistent with the image.</summary>
    Bitmaps = 1UL << 0,
    /// <summary>The external data file is a valid raw image by itself.</summary>
    DataFileRaw = 1UL << 1,
    /// <summary>Every bit this implementation knows.</summary>
    Known = Bitmaps | DataFileRaw,
}

/// <summary>One entry of the feature name table extension: a feature bit and its name.</summary>
/// <param name="Kind">0 incompatible, 1 compatible, 2 autoclear.</param>
/// <param name="Bit">The bit number.</param>
/// <param name="Name">The name (at most 46 bytes).</param>
public readonly record struct FeatureName(byte Kind, byte Bit, string Name)
{
    /// <summary>The table QEMU 7.2 writes into every version 3 image, which Block writes too.</summary>
    public static readonly FeatureName[] Standard =
    [
        new(0, 0, "dirty bit"),
        new(0, 1, "corrupt bit"),
        new(0, 2, "external data file"),
        new(0, 3, "compression type"),
        new(0, 4, "extended L2 entries"),
        new(1, 0, "lazy refcounts"),
        new(2, 0, "bitmaps"),
        new(2, 1, "raw external data"),
    ];
}
