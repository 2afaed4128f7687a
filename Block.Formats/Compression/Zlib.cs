using System.Runtime.InteropServices;

namespace Block.Formats.Compression;

/// <summary>
/// One-shot inflation of a zlib stream (RFC 1950, with its header and Adler-32 trailer) through the system zlib
/// (<c>libz.so.1</c>), with QEMU's acceptance rule for the compressed blocks of cloop and dmg.
/// </summary>
/// <remarks>
/// The system zlib rather than <c>ZLibStream</c>: QEMU accepts a block only if one <c>inflate(Z_FINISH)</c> call ends
/// the stream and fills the block exactly, and trailing bytes after the stream are ignored; calling zlib the same
/// way gives the same verdict on every corrupt block, and allocates nothing on the managed heap.
/// </remarks>
internal static unsafe partial class Zlib
{
    private const string Library = "libz.so.1";
    private const int ZOk = 0, ZStreamEnd = 1, ZNoFlush = 0, ZFinish = 4;

    private static readonly byte[] s_zeroes = new byte[16 << 10];
    private static readonly Lazy<bool> s_available = new(() => NativeLibrary.TryLoad(Library, out _));

    /// <summary>
    /// Inflates <paramref name="source"/>, followed by <paramref name="zeroPadding"/> zero bytes, into
    /// <paramref name="destination"/>. True if the stream ended and produced exactly <paramref name="destination"/>.Length
    /// bytes; false for any other outcome (corrupt, short, too long).
    /// </summary>
    /// <remarks>
    /// The zero padding stands for the part of a compressed block that lies past the end of the file, which QEMU reads
    /// as zeroes: it is fed from one small buffer, so a block that claims to run far past the file costs no memory.
    /// </remarks>
    /// <exception cref="BlockException">ENOTSUP: the system zlib is not installed.</exception>
    public static bool TryInflateExactly(ReadOnlySpan<byte> source, long zeroPadding, Span<byte> destination)
    {
        if (!s_available.Value)
            ThrowMissing();
        ZStream z = default;
        fixed (byte* version = "1.2.11"u8)
        {
            if (InflateInit(&z, version, sizeof(ZStream)) != ZOk)
                throw new BlockException(Errno.ENOMEM, "zlib inflateInit failed");
        }
        try
        {
            fixed (byte* src = source)
            fixed (byte* dst = destination)
            fixed (byte* zeroes = s_zeroes)
            {
                z.NextIn = src;
                z.AvailIn = (uint)source.Length;
                z.NextOut = dst;
                z.AvailOut = (uint)destination.Length;
                int rc = Inflate(&z, zeroPadding == 0 ? ZFinish : ZNoFlush);
                while (rc == ZOk)
                {
                    if (z.AvailIn == 0)
                    {
                        if (zeroPadding == 0)
                            break;
                        int n = (int)Math.Min(zeroPadding, s_zeroes.Length);
                        zeroPadding -= n;
                        z.NextIn = zeroes;
                        z.AvailIn = (uint)n;
                    }
                    rc = Inflate(&z, zeroPadding == 0 ? ZFinish : ZNoFlush);
                }
                return rc == ZStreamEnd && z.TotalOut == (nuint)destination.Length;
            }
        }
        finally
        {
            InflateEnd(&z);
        }
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private static void ThrowMissing() =>
        throw new BlockException(Errno.ENOTSUP, "zlib-compressed blocks need the system zlib (libz.so.1), which is not installed");

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

    [LibraryImport(Library, EntryPoint = "inflateInit_")]
    private static partial int InflateInit(ZStream* strm, byte* version, int streamSize);

    [LibraryImport(Library, EntryPoint = "inflate")]
    private static partial int Inflate(ZStream* strm, int flush);

    [LibraryImport(Library, EntryPoint = "inflateEnd")]
    private static partial int InflateEnd(ZStream* strm);
}
