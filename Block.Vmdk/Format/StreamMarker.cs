using System.Buffers.Binary;

namespace Block.Vmdk.Format;

/// <summary>The type of a metadata marker in a streamOptimized extent.</summary>
public enum StreamMarkerType : uint
{
    /// <summary>End of stream (an all-zero sector).</summary>
    EndOfStream = 0,

    /// <summary>A grain table follows.</summary>
    GrainTable = 1,

    /// <summary>A grain directory follows.</summary>
    GrainDirectory = 2,

    /// <summary>The footer (a copy of the header with the real grain directory offset) follows.</summary>
    Footer = 3,
}

/// <summary>
/// Markers of a streamOptimized extent. A grain marker is <c>u64 lba, u32 size</c> followed by <c>size</c> bytes of
/// zlib data (with header), padded to a sector; a metadata marker is one sector <c>u64 sectors, u32 0, u32 type</c>.
/// </summary>
public static class StreamMarker
{
    /// <summary>Bytes before the compressed data of a grain.</summary>
    public const int GrainHeaderSize = 12;

    /// <summary>Bytes QEMU reads at the end of a file whose header says the grain directory is in the footer: footer marker, footer, end-of-stream marker.</summary>
    public const int FooterAreaSize = 3 * 512;

    /// <summary>Writes a grain marker's 12 bytes.</summary>
    public static void WriteGrain(Span<byte> destination, ulong lbaSectors, uint compressedSize)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(destination, lbaSectors);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[8..], compressedSize);
    }

    /// <summary>Reads a grain marker: the sector it holds and the size of its compressed data.</summary>
    public static (ulong LbaSectors, uint CompressedSize) ReadGrain(ReadOnlySpan<byte> source) =>
        (BinaryPrimitives.ReadUInt64LittleEndian(source), BinaryPrimitives.ReadUInt32LittleEndian(source[8..]));

    /// <summary>Writes a metadata marker sector (zeroing the rest of its 512 bytes).</summary>
    public static void WriteMetadata(Span<byte> destination, ulong sectors, StreamMarkerType type)
    {
        destination[..512].Clear();
        BinaryPrimitives.WriteUInt64LittleEndian(destination, sectors);
        BinaryPrimitives.WriteUInt32LittleEndian(destination[12..], (uint)type);
    }

    /// <summary>Reads a metadata marker: its sector count, its size field (0 for metadata) and its type.</summary>
    public static (ulong Sectors, uint Size, StreamMarkerType Type) ReadMetadata(ReadOnlySpan<byte> source) =>
        (BinaryPrimitives.ReadUInt64LittleEndian(source), BinaryPrimitives.ReadUInt32LittleEndian(source[8..]),
            (StreamMarkerType)BinaryPrimitives.ReadUInt32LittleEndian(source[12..]));
}
