namespace Block.Vmdk.Format;

/// <summary>The <c>flags</c> field of a hosted sparse extent header.</summary>
[Flags]
public enum SparseExtentFlags : uint
{
    /// <summary>No flags.</summary>
    None = 0,

    /// <summary>Bit 0: the newline-detection bytes are valid.</summary>
    ValidNewlineTest = 1 << 0,

    /// <summary>Bit 1: the redundant grain directory and tables are kept.</summary>
    RedundantGrainTable = 1 << 1,

    /// <summary>Bit 2: grain table entries of 1 mean a zeroed grain.</summary>
    ZeroedGrainEntries = 1 << 2,

    /// <summary>Bit 16: grains are compressed.</summary>
    CompressedGrains = 1 << 16,

    /// <summary>Bit 17: the file has grain and metadata markers (streamOptimized).</summary>
    Markers = 1 << 17,
}
