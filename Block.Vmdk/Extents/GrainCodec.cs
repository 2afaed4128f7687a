using System.IO.Compression;

namespace Block.Vmdk.Extents;

/// <summary>
/// Compression of streamOptimized grains: a zlib stream <em>with</em> its header (RFC 1950, <c>78 9C</c>), as
/// zlib's <c>compress()</c> makes it — not the raw deflate of qcow2's compressed clusters.
/// </summary>
internal static class GrainCodec
{
    /// <summary>zlib's default level, the one QEMU's <c>compress()</c> uses.</summary>
    public const int Level = 6;

    /// <summary>The most bytes the compressed form of <paramref name="length"/> bytes can take (stored blocks plus framing).</summary>
    public static int MaxCompressedLength(int length) => length + (length >> 8) + 64;

    /// <summary>Compresses <paramref name="source"/> into <paramref name="destination"/>; returns the compressed length.</summary>
    public static int Compress(ReadOnlySpan<byte> source, byte[] destination, int destinationOffset)
    {
        using var output = new MemoryStream(destination, destinationOffset, destination.Length - destinationOffset, writable: true);
        using (var zlib = new ZLibStream(output, new ZLibCompressionOptions { CompressionLevel = Level }, leaveOpen: true))
            zlib.Write(source);
        return (int)output.Position;
    }

    /// <summary>
    /// Decompresses <paramref name="source"/> into <paramref name="destination"/>; returns the decompressed length,
    /// which may be shorter than the grain (the last grain of a disk whose size is not a whole number of grains).
    /// </summary>
    /// <exception cref="ImageFormatException">The data is not a valid zlib stream, or inflates to more than a grain.</exception>
    public static int Decompress(byte[] source, int sourceOffset, int sourceLength, Span<byte> destination, long hostOffset)
    {
        try
        {
            using var input = new MemoryStream(source, sourceOffset, sourceLength, writable: false);
            using var zlib = new ZLibStream(input, CompressionMode.Decompress);
            int n = zlib.ReadAtLeast(destination, destination.Length, throwOnEndOfStream: false);
            if (n == destination.Length && zlib.ReadByte() >= 0)
                throw new ImageFormatException($"VMDK compressed grain at offset {hostOffset} inflates to more than a grain ({destination.Length} bytes)", Errno.EIO);
            return n;
        }
        catch (Exception e) when (e is InvalidDataException or IOException)
        {
            // zlib reports broken data as InvalidDataException, and some corruptions as ZLibException (an IOException).
            throw new ImageFormatException($"VMDK compressed grain at offset {hostOffset} is not a valid zlib stream: {e.Message}", Errno.EIO, e);
        }
    }
}
