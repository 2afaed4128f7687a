using System.Buffers.Binary;
using System.Globalization;

namespace Block.Formats.Qcow;

/// <summary>
/// The qcow (version 1) header: the 48 big-endian bytes at the start of the image, parsed from a span, validated in
/// one place with QEMU's words, and written back by one method.
/// </summary>
internal sealed class QcowHeader
{
    /// <summary>The header's size; the backing file name (if any) and then the L1 table follow it.</summary>
    public const int Size = 48;

    /// <summary><c>crypt_method</c>: no encryption.</summary>
    public const uint CryptNone = 0;

    /// <summary><c>crypt_method</c>: legacy AES-128-CBC.</summary>
    public const uint CryptAes = 1;

    /// <summary>The longest backing file name QEMU reads (its buffer of 1024 bytes holds a terminator).</summary>
    public const int MaxBackingNameBytes = 1023;

    /// <summary>The largest L1 table QEMU opens, in entries (its size in bytes must fit an int).</summary>
    public const long MaxL1Entries = int.MaxValue / 8;

    private const uint Magic = 0x514649fb; // "QFI\xfb", shared with qcow2 (whose version is 2 or 3)

    /// <summary>Where the backing file name starts; 0 for none.</summary>
    public ulong BackingFileOffset { get; init; }

    /// <summary>The backing file name's length in bytes (no terminator).</summary>
    public uint BackingFileSize { get; init; }

    /// <summary>The modification time QEMU never sets (written as 0).</summary>
    public uint Mtime { get; init; }

    /// <summary>The virtual disk size in bytes.</summary>
    public ulong DiskSize { get; init; }

    /// <summary>log2 of the cluster size: 9 to 16.</summary>
    public int ClusterBits { get; init; }

    /// <summary>log2 of the entries of one L2 table: 6 to 13 (tables of 512 bytes to 64 KiB).</summary>
    public int L2Bits { get; init; }

    /// <summary><see cref="CryptNone"/> or <see cref="CryptAes"/>.</summary>
    public uint CryptMethod { get; init; }

    /// <summary>Where the L1 table starts.</summary>
    public ulong L1TableOffset { get; init; }

    /// <summary>Entries of the L1 table: one per <c>2^(cluster_bits + l2_bits)</c> bytes of disk.</summary>
    public long L1Size => L1SizeFor(DiskSize, ClusterBits, L2Bits);

    /// <summary>The L1 entries a disk of <paramref name="diskSize"/> bytes needs.</summary>
    public static long L1SizeFor(ulong diskSize, int clusterBits, int l2Bits)
    {
        int shift = clusterBits + l2Bits;
        return (long)((diskSize >> shift) + ((diskSize & ((1UL << shift) - 1)) != 0 ? 1UL : 0));
    }

    /// <summary>True if <paramref name="header"/> starts with the qcow magic and version 1.</summary>
    public static bool IsQcow1(ReadOnlySpan<byte> header) =>
        header.Length >= 8 && BinaryPrimitives.ReadUInt32BigEndian(header) == Magic && BinaryPrimitives.ReadUInt32BigEndian(header[4..]) == 1;

    /// <summary>Parses and validates the header, refusing what QEMU 7.2 refuses with its words and errno.</summary>
    /// <exception cref="ImageFormatException">Not a qcow image QEMU opens.</exception>
    public static QcowHeader Parse(ReadOnlySpan<byte> header)
    {
        if (header.Length < Size || BinaryPrimitives.ReadUInt32BigEndian(header) != Magic)
            throw new ImageFormatException("Image not in qcow format");
        uint version = BinaryPrimitives.ReadUInt32BigEndian(header[4..]);
        if (version != 1)
        {
            string hint = version is 2 or 3 ? "\nTry the 'qcow2' driver instead." : "";
            throw new ImageFormatException(string.Create(CultureInfo.InvariantCulture, $"qcow (v1) does not support qcow version {version}{hint}"), Errno.ENOTSUP);
        }
        var parsed = new QcowHeader
        {
            BackingFileOffset = BinaryPrimitives.ReadUInt64BigEndian(header[8..]),
            BackingFileSize = BinaryPrimitives.ReadUInt32BigEndian(header[16..]),
            Mtime = BinaryPrimitives.ReadUInt32BigEndian(header[20..]),
            DiskSize = BinaryPrimitives.ReadUInt64BigEndian(header[24..]),
            ClusterBits = header[32],
            L2Bits = header[33],
            CryptMethod = BinaryPrimitives.ReadUInt32BigEndian(header[36..]),
            L1TableOffset = BinaryPrimitives.ReadUInt64BigEndian(header[40..]),
        };
        if (parsed.DiskSize <= 1)
            throw new ImageFormatException("Image size is too small (must be at least 2 bytes)");
        if (parsed.ClusterBits is < 9 or > 16)
            throw new ImageFormatException("Cluster size must be between 512 and 64k");
        if (parsed.L2Bits is < 9 - 3 or > 16 - 3)
            throw new ImageFormatException("L2 table size must be between 512 and 64k");
        if (parsed.CryptMethod > CryptAes)
            throw new ImageFormatException("invalid encryption method in qcow header");
        return parsed;
    }

    /// <summary>
    /// The checks QEMU makes after the encryption options: the size its tables can address, and the backing name's
    /// length.
    /// </summary>
    public void ValidateTables()
    {
        int shift = ClusterBits + L2Bits;
        if (DiskSize > ulong.MaxValue - (1UL << shift) || L1Size > MaxL1Entries)
            throw new ImageFormatException("Image too large");
        if (BackingFileOffset != 0 && BackingFileSize > MaxBackingNameBytes)
            throw new ImageFormatException("Backing file name too long");
    }

    /// <summary>Writes the 48 header bytes into <paramref name="destination"/>.</summary>
    public void Write(Span<byte> destination)
    {
        destination[..Size].Clear();
        BinaryPrimitives.WriteUInt32BigEndian(destination, Magic);
        BinaryPrimitives.WriteUInt32BigEndian(destination[4..], 1);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], BackingFileOffset);
        BinaryPrimitives.WriteUInt32BigEndian(destination[16..], BackingFileSize);
        BinaryPrimitives.WriteUInt32BigEndian(destination[20..], Mtime);
        BinaryPrimitives.WriteUInt64BigEndian(destination[24..], DiskSize);
        destination[32] = (byte)ClusterBits;
        destination[33] = (byte)L2Bits;
        BinaryPrimitives.WriteUInt32BigEndian(destination[36..], CryptMethod);
        BinaryPrimitives.WriteUInt64BigEndian(destination[40..], L1TableOffset);
    }
}
