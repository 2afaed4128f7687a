namespace Block.Formats.Dmg;

/// <summary>The chunk types of a dmg <c>mish</c> (blkx) table that QEMU 7.2 reads; every other type is skipped, as in QEMU.</summary>
internal enum DmgChunkType : uint
{
    /// <summary>UDZE: zeroes, nothing stored.</summary>
    Zero = 0,
    /// <summary>UDRW: stored as is.</summary>
    Raw = 1,
    /// <summary>UDIG: ignored (free space), reads as zeroes.</summary>
    Ignore = 2,
    /// <summary>UDZO: one zlib stream.</summary>
    Zlib = 0x8000_0005,
    /// <summary>UDBZ: one bzip2 stream.</summary>
    Bzip2 = 0x8000_0006,
    /// <summary>ULFO: one lzfse stream (no library here: skipped with QEMU's warning, as QEMU without its lzfse module).</summary>
    Lzfse = 0x8000_0007,
}
