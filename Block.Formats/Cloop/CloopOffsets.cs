using System.Buffers.Binary;
using System.Globalization;

namespace Block.Formats.Cloop;

/// <summary>
/// The offsets table of a cloop image: where each compressed block starts in the file, validated as QEMU validates it
/// (never decreasing, no block larger than 128 MiB compressed).
/// </summary>
/// <remarks>
/// Only the entries inside the file are kept. QEMU reads the table past the end of the file as zeroes, so those
/// entries are all zero and valid only if every entry before them is zero too: they need no memory, and a header that
/// claims 64 Mi blocks in a file of a few bytes costs nothing.
/// </remarks>
internal sealed class CloopOffsets
{
    /// <summary>The largest compressed block QEMU accepts: twice the largest block.</summary>
    public const long MaxCompressedBlock = 2L * CloopHeader.MaxBlockSize;

    private readonly long[] _stored;

    private CloopOffsets(long[] stored) => _stored = stored;

    /// <summary>Where block <paramref name="index"/> starts in the file (index = count: where the last block ends), unsigned.</summary>
    public ulong this[long index] => index < _stored.Length ? (ulong)_stored[index] : 0;

    /// <summary>The number of bytes of the table a reader must fetch from the file: what of it lies inside the file.</summary>
    public static int StoredBytes(CloopHeader header, long fileLength) =>
        (int)Math.Clamp(fileLength - CloopHeader.OffsetsAt, 0, (header.BlockCount + 1L) * 8);

    /// <summary>
    /// Validates the table whose in-file part is <paramref name="stored"/> (as read from the file; a last entry cut by
    /// the end of the file is completed with zeroes) for an image with <paramref name="header"/>.
    /// </summary>
    /// <exception cref="ImageFormatException">An entry is smaller than the one before it, or a block is too large (QEMU's messages).</exception>
    public static CloopOffsets Parse(CloopHeader header, ReadOnlySpan<byte> stored)
    {
        var offsets = new long[(stored.Length + 7) / 8];
        Span<byte> entry = stackalloc byte[8];
        for (int i = 0; i < offsets.Length; i++)
        {
            entry.Clear();
            stored.Slice(i * 8, Math.Min(8, stored.Length - i * 8)).CopyTo(entry);
            // The bits of QEMU's unsigned offset: readers compare them as unsigned (2^63 and up lies past any file).
            offsets[i] = (long)BinaryPrimitives.ReadUInt64BigEndian(entry);
        }
        long entries = header.BlockCount + 1L;
        for (long i = 1; i < entries; i++)
        {
            ulong previous = (ulong)(i - 1 < offsets.Length ? offsets[i - 1] : 0);
            ulong current = (ulong)(i < offsets.Length ? offsets[i] : 0);
            if (current < previous)
                throw new ImageFormatException(string.Create(CultureInfo.InvariantCulture, $"offsets not monotonically increasing at index {i}, image file is corrupt"));
            if (current - previous > MaxCompressedBlock)
                throw new ImageFormatException(string.Create(CultureInfo.InvariantCulture, $"invalid compressed block size at index {i}, image file is corrupt"));
            // Past the stored entries everything is zero: with a zero before them, nothing more can fail.
            if (i >= offsets.Length)
                break;
        }
        return new CloopOffsets(offsets);
    }
}
