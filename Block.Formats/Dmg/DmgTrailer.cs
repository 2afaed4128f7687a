using System.Buffers.Binary;

namespace Block.Formats.Dmg;

/// <summary>
/// The UDIF trailer ("koly" block, 512 bytes, big-endian) near the end of a dmg file: where the data fork, the
/// resource fork and the XML property list lie, and the disk size.
/// </summary>
/// <param name="At">Where the trailer starts in the file.</param>
/// <param name="DataForkOffset">Where the data fork starts: every chunk offset is relative to it.</param>
/// <param name="ResourceForkOffset">Where the resource fork starts.</param>
/// <param name="ResourceForkLength">Its length; zero if the blkx tables are only in the XML property list.</param>
/// <param name="XmlOffset">Where the XML property list starts.</param>
/// <param name="XmlLength">Its length.</param>
/// <param name="SectorCount">The disk size in sectors.</param>
internal readonly record struct DmgTrailer(long At, ulong DataForkOffset, ulong ResourceForkOffset, ulong ResourceForkLength,
    ulong XmlOffset, ulong XmlLength, long SectorCount)
{
    /// <summary>The bytes of the trailer.</summary>
    public const int Size = 512;

    /// <summary>The bytes QEMU searches for the magic: the last 511 bytes of the second-last sector and the last sector.</summary>
    public const int SearchBytes = 1025;

    /// <summary>
    /// The length QEMU gives the file when it looks for the trailer: rounded up to whole sectors (the bytes past the
    /// real end read as zeroes).
    /// </summary>
    public static long SectorLength(long fileLength) => (fileLength + 511) & ~511L;

    /// <summary>Where QEMU starts searching for the magic in a file of <paramref name="fileLength"/> bytes.</summary>
    public static long SearchStart(long fileLength) => SectorLength(fileLength) > 511 + 512 ? SectorLength(fileLength) - 511 - 512 : 0;

    /// <summary>
    /// Finds the magic in <paramref name="search"/> (<see cref="SearchBytes"/> bytes or the whole file from
    /// <see cref="SearchStart"/>, zero-padded to whole sectors), returning its index in the span.
    /// </summary>
    /// <exception cref="ImageFormatException">The file is shorter than a sector, or holds no magic there (QEMU's messages).</exception>
    public static int Find(ReadOnlySpan<byte> search, long fileLength)
    {
        if (SectorLength(fileLength) < 512)
            throw new ImageFormatException("dmg file must be at least 512 bytes long");
        int at = search.IndexOf("koly"u8);
        if (at < 0)
            throw new ImageFormatException("Could not locate UDIF trailer in dmg file");
        return at;
    }

    /// <summary>
    /// Parses the trailer found at <paramref name="at"/> (its 512 bytes, zero-padded past the end of the file) and checks
    /// its fields as QEMU does; <paramref name="invalid"/> makes QEMU's error for a field that fails.
    /// </summary>
    public static DmgTrailer Parse(long at, ReadOnlySpan<byte> trailer, Func<Exception> invalid)
    {
        ulong koly = (ulong)at;
        ulong dataFork = Read64(trailer, 0x18);
        if (dataFork > koly)
            throw invalid();
        ulong rsrcOffset = Read64(trailer, 0x28), rsrcLength = Read64(trailer, 0x30);
        if (rsrcOffset >= koly || rsrcLength > koly - rsrcOffset)
            throw invalid();
        ulong xmlOffset = Read64(trailer, 0xd8), xmlLength = Read64(trailer, 0xe0);
        if (xmlOffset >= koly || xmlLength > koly - xmlOffset)
            throw invalid();
        // A size past what a 64-bit byte length holds is refused with the negative counts QEMU refuses.
        long sectors = (long)Read64(trailer, 0x1ec);
        if (sectors < 0 || sectors > long.MaxValue / 512)
            throw invalid();
        return new DmgTrailer(at, dataFork, rsrcOffset, rsrcLength, xmlOffset, xmlLength, sectors);
    }

    private static ulong Read64(ReadOnlySpan<byte> s, int at) => BinaryPrimitives.ReadUInt64BigEndian(s[at..]);
}
