namespace Block.Formats.Dmg;

/// <summary>One chunk of a dmg image: a run of disk sectors and where (and how) it is stored.</summary>
/// <param name="Type">How the chunk is stored.</param>
/// <param name="Sector">The first disk sector (the mish block's first sector plus the chunk's, wrapping as QEMU adds).</param>
/// <param name="SectorCount">The sectors of disk it covers.</param>
/// <param name="Offset">Where its data starts in the file (data fork + mish block + chunk offsets, wrapping as QEMU adds).</param>
/// <param name="Length">The bytes of its data in the file.</param>
internal readonly record struct DmgChunk(DmgChunkType Type, ulong Sector, ulong SectorCount, ulong Offset, ulong Length)
{
    /// <summary>True if disk sector <paramref name="sector"/> lies in the chunk (QEMU's test, in its unsigned arithmetic).</summary>
    public bool Contains(ulong sector) => Sector <= sector && Sector + SectorCount > sector;

    /// <summary>True for the types that read as zeroes without touching the file.</summary>
    public bool IsZero => Type is DmgChunkType.Zero or DmgChunkType.Ignore;
}
