using System.Buffers.Binary;
using System.Runtime.InteropServices;

namespace Block.Formats.Compression;

/// <summary>
/// One-shot inflation of a zlib stream (RFC 1950, with its header and Adler-32 trailer) through the system zlib
/// (<c>libz.so.1</c>), with QEMU's acceptance rule for the compressed blocks of cloop and dmg.
/// </summary>
/// <remarks>
/// The system zlib rather than <c>ZLibStream</c>: QEMU accepts a block only if one <c>inflate(Z_FINISH)</c> call ends
/// the stream and fills the block exactly, and trailing bytes after the stream are ignored; calling zlib the same
/// way gives the same verdict on every corrupt block, and allocates nothing on the managed heap. zlib inflates the
/// raw deflate data between the header and the trailer, and the header and the Adler-32 trailer are checked here as
/// zlib checks them: zlib's own checksum loop was more than half the time of a scattered cloop read, and
/// <see cref="Adler32"/> takes a sixth of its time (see bench/README.md).
/// </remarks>
internal static unsafe partial class Zlib
{
    private const string Library = "libz.so.1";
    private const int ZOk = 0, ZStreamEnd = 1, ZNoFlush = 0, ZFinish = 4;

    /// <summary><c>inflateInit2</c>'s window bits for raw deflate data, without zlib's header and trailer.</summary>
    private const int RawDeflateWindowBits = -15;

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
        // The two header bytes, as zlib checks them: deflate, a window zlib's default accepts, no preset dictionary.
        if (source.Length < 2)
            return false;
        int cmf = source[0], flg = source[1];
        if ((cmf << 8 | flg) % 31 != 0 || (cmf & 0x0f) != 8 || cmf >> 4 > 7 || (flg & 0x20) != 0)
            return false;
        ZStream z = default;
        fixed (byte* version = "1.2.11"u8)
        {
            if (InflateInit2(&z, RawDeflateWindowBits, version, sizeof(ZStream)) != ZOk)
                throw new BlockException(Errno.ENOMEM, "zlib inflateInit2 failed");
        }
        long padding = zeroPadding, paddingFed = 0, trailerAt;
        try
        {
            fixed (byte* src = source)
            fixed (byte* dst = destination)
            fixed (byte* zeroes = s_zeroes)
            {
                z.NextIn = src + 2;
                z.AvailIn = (uint)source.Length - 2;
                byte empty;
                z.NextOut = destination.IsEmpty ? &empty : dst;   // zlib refuses a null output pointer
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
                        paddingFed += n;
                        z.NextIn = zeroes;
                        z.AvailIn = (uint)n;
                    }
                    rc = Inflate(&z, zeroPadding == 0 ? ZFinish : ZNoFlush);
                }
                if (rc != ZStreamEnd || z.TotalOut != (nuint)destination.Length)
                    return false;
                // Where the trailer starts in the source followed by the padding.
                trailerAt = paddingFed == 0 ? z.NextIn - src : source.Length + paddingFed - z.AvailIn;
            }
        }
        finally
        {
            InflateEnd(&z);
        }
        // The big-endian Adler-32 of the output follows the deflate data, whole (zlib's inflate would wait for it); the
        // padding's part of it is zeroes.
        if (trailerAt + 4 > source.Length + padding)
            return false;
        Span<byte> trailer = stackalloc byte[4];
        trailer.Clear();
        if (trailerAt < source.Length)
            source.Slice((int)trailerAt, (int)Math.Min(4, source.Length - trailerAt)).CopyTo(trailer);
        return BinaryPrimitives.ReadUInt32BigEndian(trailer) == Adler32.Compute(destination);
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

    [LibraryImport(Library, EntryPoint = "inflateInit2_")]
    private static partial int InflateInit2(ZStream* strm, int windowBits, byte* version, int streamSize);

    [LibraryImport(Library, EntryPoint = "inflate")]
    private static partial int Inflate(ZStream* strm, int flush);

    [LibraryImport(Library, EntryPoint = "inflateEnd")]
    private static partial int InflateEnd(ZStream* strm);
}
