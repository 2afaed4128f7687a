using System.Runtime.InteropServices;
using ZstdSharp;

namespace Block.Qcow2.Compression;

/// <summary>The qcow2 cluster compression types (header byte 104).</summary>
internal enum Qcow2CompressionType : byte
{
    /// <summary>Raw deflate with a 4 KiB window (QEMU's "zlib").</summary>
    Zlib = 0,
    /// <summary>One zstd frame per cluster.</summary>
    Zstd = 1,
}

/// <summary>Compresses and decompresses single clusters the way QEMU's qcow2 driver does.</summary>
/// <remarks>
/// <para>QEMU reads "zlib" clusters with <c>inflateInit2(-12)</c>: a raw deflate stream whose back references stay within
/// 4 KiB. .NET's <c>DeflateStream</c> always uses a 32 KiB window, so data it compresses may not be readable by QEMU;
/// both directions therefore use the system zlib (<c>libz.so.1</c>) with QEMU's parameters, which also makes our
/// compressed clusters byte-identical to QEMU's.</para>
/// <para>Compressed data is followed by whatever else shares its last sector, so decompression stops when the
/// cluster is complete and ignores trailing bytes, as QEMU does.</para>
/// </remarks>
internal static class Qcow2Compression
{
    /// <summary>
    /// Compresses <paramref name="source"/> (one cluster) into <paramref name="destination"/>. Returns the compressed
    /// length, or -1 if the result would not be smaller than <paramref name="destination"/> (the caller then stores the
    /// cluster uncompressed).
    /// </summary>
    public static int Compress(Qcow2CompressionType type, ReadOnlySpan<byte> source, Span<byte> destination) => type switch
    {
        Qcow2CompressionType.Zlib => Zlib.Deflate(source, destination),
        Qcow2CompressionType.Zstd => CompressZstd(source, destination),
        _ => throw new BlockException(Errno.ENOTSUP, $"Unknown compression type {(int)type}"),
    };

    /// <summary>Decompresses exactly <paramref name="destination"/>.Length bytes from <paramref name="source"/>.</summary>
    /// <exception cref="BlockException">EIO: the data is not a valid compressed cluster.</exception>
    public static void Decompress(Qcow2CompressionType type, ReadOnlySpan<byte> source, Span<byte> destination)
    {
        switch (type)
        {
            case Qcow2CompressionType.Zlib:
                Zlib.Inflate(source, destination);
                break;
            case Qcow2CompressionType.Zstd:
                DecompressZstd(source, destination);
                break;
            default:
                throw new BlockException(Errno.ENOTSUP, $"Unknown compression type {(int)type}");
        }
    }

    private static int CompressZstd(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        using var compressor = new Compressor();
        return compressor.TryWrap(source, destination, out int written) && written < destination.Length ? written : -1;
    }

    private static void DecompressZstd(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        try
        {
            using var input = new MemoryStream(source.ToArray(), writable: false);
            using var stream = new DecompressionStream(input, checkEndOfStream: false);
            int done = 0;
            while (done < destination.Length)
            {
                int n = stream.Read(destination[done..]);
                if (n == 0)
                    break;
                done += n;
            }
            if (done != destination.Length)
                throw new BlockException(Errno.EIO, "qcow2: compressed cluster is truncated (zstd)");
        }
        catch (ZstdException e)
        {
            throw new BlockException(Errno.EIO, $"qcow2: compressed cluster is corrupt (zstd: {e.Message})");
        }
    }

    /// <summary>The few zlib entry points QEMU's settings need.</summary>
    private static unsafe class Zlib
    {
        private const string Library = "libz.so.1";
        private const int ZOk = 0, ZStreamEnd = 1, ZBufError = -5, ZFinish = 4;
        private const int DefaultCompression = -1, Deflated = 8, DefaultStrategy = 0;
        private const int WindowBits = -12, MemLevel = 9;

        public static int Deflate(ReadOnlySpan<byte> source, Span<byte> destination)
        {
            ZStream z = default;
            EnsureLoaded();
            int rc = deflateInit2_(&z, DefaultCompression, Deflated, WindowBits, MemLevel, DefaultStrategy, "1.2.11", sizeof(ZStream));
            if (rc != ZOk)
                throw new BlockException(Errno.ENOMEM, $"zlib deflateInit2 failed ({rc})");
            try
            {
                fixed (byte* src = source)
                fixed (byte* dst = destination)
                {
                    z.NextIn = src;
                    z.AvailIn = (uint)source.Length;
                    z.NextOut = dst;
                    z.AvailOut = (uint)destination.Length;
                    rc = deflate(&z, ZFinish);
                }
                // Anything but a complete stream that left room to spare means "does not compress": store it.
                if (rc != ZStreamEnd || z.AvailOut == 0)
                    return -1;
                return destination.Length - (int)z.AvailOut;
            }
            finally
            {
                deflateEnd(&z);
            }
        }

        public static void Inflate(ReadOnlySpan<byte> source, Span<byte> destination)
        {
            ZStream z = default;
            EnsureLoaded();
            int rc = inflateInit2_(&z, WindowBits, "1.2.11", sizeof(ZStream));
            if (rc != ZOk)
                throw new BlockException(Errno.ENOMEM, $"zlib inflateInit2 failed ({rc})");
            try
            {
                fixed (byte* src = source)
                fixed (byte* dst = destination)
                {
                    z.NextIn = src;
                    z.AvailIn = (uint)source.Length;
                    z.NextOut = dst;
                    z.AvailOut = (uint)destination.Length;
                    rc = inflate(&z, ZFinish);
                }
                // QEMU accepts the end of the stream, or running out of input/output, once the cluster is complete.
                if ((rc != ZStreamEnd && rc != ZBufError) || z.AvailOut != 0)
                    throw new BlockException(Errno.EIO, "qcow2: compressed cluster is corrupt (deflate)");
            }
            finally
            {
                inflateEnd(&z);
            }
        }

        private static readonly bool Available = NativeLibrary.TryLoad(Library, out _);

        private static void EnsureLoaded()
        {
            if (!Available)
                throw new BlockException(Errno.ENOTSUP, "qcow2 deflate compression needs the system zlib (libz.so.1), which is not installed");
        }

        [StructLayout(LayoutKind.Sequential)]
        private struct ZStream
        {
            public byte* NextIn;
            public uint AvailIn;
            public nuint TotalIn;
            public byte* NextOut;
            public uint AvailOut;
            public nuint TotalOut;
            public nint Msg;
            public nint State;
            public nint ZAlloc;
            public nint ZFree;
            public nint Opaque;
            public int DataType;
            public nuint Adler;
            public nuint Reserved;
        }

        [DllImport(Library, EntryPoint = "deflateInit2_")]
        private static extern int deflateInit2_(ZStream* strm, int level, int method, int windowBits, int memLevel, int strategy,
            [MarshalAs(UnmanagedType.LPStr)] string version, int streamSize);

        [DllImport(Library, EntryPoint = "deflate")]
        private static extern int deflate(ZStream* strm, int flush);

        [DllImport(Library, EntryPoint = "deflateEnd")]
        private static extern int deflateEnd(ZStream* strm);

        [DllImport(Library, EntryPoint = "inflateInit2_")]
        private static extern int inflateInit2_(ZStream* strm, int windowBits, [MarshalAs(UnmanagedType.LPStr)] string version, int streamSize);

        [DllImport(Library, EntryPoint = "inflate")]
        private static extern int inflate(ZStream* strm, int flush);

        [DllImport(Library, EntryPoint = "inflateEnd")]
        private static extern int inflateEnd(ZStream* strm);
    }
}
