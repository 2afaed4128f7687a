using System.Buffers.Binary;
using System.Globalization;

namespace Block.Formats.Cloop;

/// <summary>
/// The header of a cloop (compressed loopback) image, version 2.0 as <c>create_compressed_fs</c> writes it: a 128-byte
/// shell script, then the block size and the block count (big-endian), then <c>BlockCount + 1</c> big-endian u64 file
/// offsets, one where each zlib-compressed block starts and one where the last ends.
/// </summary>
/// <param name="BlockSize">The bytes of disk in each block: a multiple of 512, at most 64 MiB.</param>
/// <param name="BlockCount">The number of blocks.</param>
internal readonly record struct CloopHeader(uint BlockSize, uint BlockCount)
{
    /// <summary>The bytes of the header: the script, the block size and the block count.</summary>
    public const int Size = 136;

    /// <summary>Where the offsets table starts.</summary>
    public const int OffsetsAt = Size;

    /// <summary>The largest block QEMU accepts: 64 MiB.</summary>
    public const uint MaxBlockSize = 64 << 20;

    /// <summary>The largest offsets table QEMU reads: 512 MiB (16 TiB of disk in 256 KiB blocks).</summary>
    public const long MaxOffsetsBytes = 512 << 20;

    /// <summary>The script at the start of every version 2.0 image, which QEMU probes for.</summary>
    public static ReadOnlySpan<byte> Magic => "#!/bin/sh\n#V2.0 Format\nmodprobe cloop file=$0 && mount -r -t iso9660 /dev/cloop $1\n"u8;

    /// <summary>
    /// True if <paramref name="header"/> starts as the script of a version 2.0 image does; a file shorter than the
    /// script matches on what it has, as in QEMU.
    /// </summary>
    public static bool IsCloop(ReadOnlySpan<byte> header) =>
        Magic[..Math.Min(Magic.Length, header.Length)].SequenceEqual(header[..Math.Min(Magic.Length, header.Length)]);

    /// <summary>Parses and validates the block size and count, refusing what QEMU refuses with its words.</summary>
    /// <param name="header">The first <see cref="Size"/> bytes of the file, zero-padded if the file is shorter (as QEMU reads it).</param>
    /// <exception cref="ImageFormatException">The header is not one of a cloop image QEMU opens.</exception>
    public static CloopHeader Parse(ReadOnlySpan<byte> header)
    {
        uint blockSize = BinaryPrimitives.ReadUInt32BigEndian(header[128..]);
        if (blockSize % 512 != 0)
            throw new ImageFormatException(string.Create(CultureInfo.InvariantCulture, $"block_size {blockSize} must be a multiple of 512"));
        if (blockSize == 0)
            throw new ImageFormatException("block_size cannot be zero");
        if (blockSize > MaxBlockSize)
            throw new ImageFormatException(string.Create(CultureInfo.InvariantCulture, $"block_size {blockSize} must be {MaxBlockSize >> 20} MB or less"));
        uint count = BinaryPrimitives.ReadUInt32BigEndian(header[132..]);
        const uint maxCount = (uint.MaxValue - 1) / 8;
        if (count > maxCount)
            throw new ImageFormatException(string.Create(CultureInfo.InvariantCulture, $"n_blocks {count} must be {maxCount} or less"));
        // QEMU sizes the table in 32 bits: the largest count it allows wraps to an empty table, which it cannot allocate.
        if (count == maxCount)
            throw new ImageFormatException("Could not allocate offsets table");
        if ((count + 1L) * 8 > MaxOffsetsBytes)
            throw new ImageFormatException("image requires too many offsets, try increasing block size");
        return new CloopHeader(blockSize, count);
    }

    /// <summary>
    /// The virtual disk size. QEMU multiplies the block count by the sectors per block in 32 bits, so a disk of
    /// 2 TiB or more wraps; we show the size QEMU shows.
    /// </summary>
    public long DiskSize => (long)unchecked(BlockCount * (BlockSize / 512)) * 512;
}
