using System.Runtime.InteropServices;

namespace Block.Formats.Compression;

/// <summary>
/// One-shot decompression of a bzip2 stream through the system libbz2 (<c>libbz2.so.1.0</c>), loaded on first use,
/// with QEMU's acceptance rule for the bzip2 chunks of dmg.
/// </summary>
/// <remarks>
/// libbz2 rather than a managed package (SharpZipLib and SharpCompress are the NuGet choices): it is the library
/// QEMU's <c>dmg-bz2</c> module calls, so a corrupt chunk gets QEMU's verdict from the same code; it is on every
/// Debian and macOS system; and it keeps this package free of dependencies and allocation-free per chunk. Only dmg
/// images with bzip2 chunks need it: it is loaded when the first such chunk is read, and its absence is a clear error
/// then, not at open.
/// </remarks>
internal static unsafe partial class Bzip2
{
    private const string Library = "libbz2.so.1.0";
    private const int BzOk = 0, BzStreamEnd = 4;

    private static readonly Lazy<bool> s_available = new(() => NativeLibrary.TryLoad(Library, out _));

    /// <summary>
    /// Decompresses <paramref name="source"/> into <paramref name="destination"/> with one <c>BZ2_bzDecompress</c>
    /// call, as QEMU does. True if the stream ended and produced exactly <paramref name="destination"/>.Length bytes.
    /// </summary>
    /// <exception cref="BlockException">ENOTSUP: libbz2 is not installed.</exception>
    public static bool TryDecompressExactly(ReadOnlySpan<byte> source, Span<byte> destination)
    {
        if (!s_available.Value)
            ThrowMissing();
        BzStream s = default;
        if (DecompressInit(&s, 0, 0) != BzOk)
            throw new BlockException(Errno.ENOMEM, "libbz2 BZ2_bzDecompressInit failed");
        try
        {
            fixed (byte* src = source)
            fixed (byte* dst = destination)
            {
                s.NextIn = src;
                s.AvailIn = (uint)source.Length;
                s.NextOut = dst;
                s.AvailOut = (uint)destination.Length;
                int rc = Decompress(&s);
                return rc == BzStreamEnd && s.TotalOutLo32 == (uint)destination.Length && s.TotalOutHi32 == 0;
            }
        }
        finally
        {
            DecompressEnd(&s);
        }
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private static void ThrowMissing() =>
        throw new BlockException(Errno.ENOTSUP, "bzip2-compressed dmg chunks need the system libbz2 (libbz2.so.1.0, Debian's libbz2-1.0), which is not installed");

    [StructLayout(LayoutKind.Sequential)]
    private struct BzStream
    {
        public byte* NextIn;
        public uint AvailIn;
        public uint TotalInLo32;
        public uint TotalInHi32;
        public byte* NextOut;
        public uint AvailOut;
        public uint TotalOutLo32;
        public uint TotalOutHi32;
        public nint State;
        public nint BzAlloc;
        public nint BzFree;
        public nint Opaque;
    }

    [LibraryImport(Library, EntryPoint = "BZ2_bzDecompressInit")]
    private static partial int DecompressInit(BzStream* strm, int verbosity, int small);

    [LibraryImport(Library, EntryPoint = "BZ2_bzDecompress")]
    private static partial int Decompress(BzStream* strm);

    [LibraryImport(Library, EntryPoint = "BZ2_bzDecompressEnd")]
    private static partial int DecompressEnd(BzStream* strm);
}
