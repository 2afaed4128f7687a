using System.Buffers.Binary;
using System.Globalization;
using Block.Graph;

namespace Block.Formats.Dmg;

/// <summary>
/// Gathers the blkx (<c>mish</c>) tables of a dmg image into a <see cref="DmgChunkTable"/>: from the resource fork
/// when the trailer names one, else from the XML property list, as QEMU does.
/// </summary>
/// <remarks>
/// QEMU walks the resource data as a list of length-prefixed resources and treats each one that starts with the mish
/// magic as a table; in the property list it base64-decodes every <c>&lt;data&gt;</c> element. Both are read here the
/// same way, so an image QEMU reads we read, with one bound of our own: a single resource or property list larger
/// than <see cref="MaxResourceBytes"/> is refused, where QEMU would try to allocate it (up to 4 GiB).
/// </remarks>
internal static class DmgBlkxReader
{
    /// <summary>The largest resource or property list we read: 256 MiB, over six million chunks.</summary>
    public const int MaxResourceBytes = 256 << 20;

    /// <summary>Reads the tables the trailer points at into <paramref name="table"/>.</summary>
    /// <param name="file">The image's file node.</param>
    /// <param name="trailer">The image's trailer.</param>
    /// <param name="table">Where the chunks go.</param>
    /// <param name="invalid">Makes QEMU's error for a table it refuses without a message of its own.</param>
    /// <param name="refuse">Reports QEMU's message for a chunk it refuses and makes the error.</param>
    /// <param name="warn">Prints QEMU's warnings about chunks it cannot read.</param>
    public static async ValueTask ReadAsync(BlockNode file, DmgTrailer trailer, DmgChunkTable table, Func<Exception> invalid,
        Func<string, Exception> refuse, Action<string> warn)
    {
        if (trailer.ResourceForkLength != 0)
            await ReadResourceForkAsync(file, trailer, table, invalid, refuse, warn).ConfigureAwait(false);
        else if (trailer.XmlLength != 0)
            await ReadPropertyListAsync(file, trailer, table, invalid, refuse, warn).ConfigureAwait(false);
        else
            throw invalid();
    }

    private static async ValueTask ReadResourceForkAsync(BlockNode file, DmgTrailer trailer, DmgChunkTable table, Func<Exception> invalid,
        Func<string, Exception> refuse, Action<string> warn)
    {
        ulong begin = trailer.ResourceForkOffset, length = trailer.ResourceForkLength;
        var word = new byte[4];
        await ReadPaddedAsync(file, begin, word).ConfigureAwait(false);
        uint dataOffset = BinaryPrimitives.ReadUInt32BigEndian(word);
        if (dataOffset > length)
            throw invalid();
        await ReadPaddedAsync(file, begin + 8, word).ConfigureAwait(false);
        uint dataLength = BinaryPrimitives.ReadUInt32BigEndian(word);
        // QEMU adds the two in 32 bits: a sum that wraps passes its check, and the walk below then fails on its own.
        if (dataLength == 0 || unchecked(dataOffset + dataLength) > length)
            throw invalid();
        ulong offset = begin + dataOffset, end = offset + dataLength;
        while (offset < end)
        {
            await ReadPaddedAsync(file, offset, word).ConfigureAwait(false);
            uint count = BinaryPrimitives.ReadUInt32BigEndian(word);
            if (count == 0 || count > end - offset)
                throw invalid();
            offset += 4;
            var resource = new byte[CheckedResourceLength(count, offset, file)];
            await ReadPaddedAsync(file, offset, resource).ConfigureAwait(false);
            table.AddMishBlock(resource, trailer.DataForkOffset, refuse, warn);
            offset += count;
        }
    }

    private static async ValueTask ReadPropertyListAsync(BlockNode file, DmgTrailer trailer, DmgChunkTable table, Func<Exception> invalid,
        Func<string, Exception> refuse, Action<string> warn)
    {
        var xml = new byte[CheckedResourceLength(trailer.XmlLength, trailer.XmlOffset, file)];
        await ReadPaddedAsync(file, trailer.XmlOffset, xml).ConfigureAwait(false);
        // QEMU searches the list as a C string: it ends at the first NUL byte.
        int nul = xml.AsSpan().IndexOf((byte)0);
        var text = nul < 0 ? xml.AsSpan() : xml.AsSpan(0, nul);
        int at = 0;
        while (true)
        {
            int open = text[at..].IndexOf("<data>"u8);
            if (open < 0)
                break;
            int begin = at + open + 6;
            int close = text[begin..].IndexOf("</data>"u8);
            if (close < 0)
                throw invalid();
            var encoded = text.Slice(begin, close);
            var block = new byte[encoded.Length / 4 * 3 + 3];
            int decoded = DecodeBase64LikeGlib(encoded, block);
            table.AddMishBlock(block.AsSpan(0, decoded), trailer.DataForkOffset, refuse, warn);
            at = begin + close + 1;
        }
    }

    /// <summary>
    /// Base64 as glib's <c>g_base64_decode</c> reads it, which QEMU calls: characters outside the alphabet are
    /// skipped, <c>=</c> counts as a zero digit that drops the byte it ends, and a last group of fewer than four digits
    /// is dropped. Returns the bytes written.
    /// </summary>
    internal static int DecodeBase64LikeGlib(ReadOnlySpan<byte> text, Span<byte> output)
    {
        int written = 0, digits = 0;
        uint value = 0;
        byte last0 = 0, last1 = 0;
        foreach (byte c in text)
        {
            int rank = Rank(c);
            if (rank < 0)
                continue;
            last1 = last0;
            last0 = c;
            value = (value << 6) | (uint)rank;
            if (++digits == 4)
            {
                output[written++] = (byte)(value >> 16);
                if (last1 != '=')
                    output[written++] = (byte)(value >> 8);
                if (last0 != '=')
                    output[written++] = (byte)value;
                digits = 0;
            }
        }
        return written;
    }

    private static int Rank(byte c) => c switch
    {
        >= (byte)'A' and <= (byte)'Z' => c - 'A',
        >= (byte)'a' and <= (byte)'z' => c - 'a' + 26,
        >= (byte)'0' and <= (byte)'9' => c - '0' + 52,
        (byte)'+' => 62,
        (byte)'/' => 63,
        (byte)'=' => 0,
        _ => -1,
    };

    private static int CheckedResourceLength(ulong length, ulong offset, BlockNode file) =>
        length <= MaxResourceBytes
            ? (int)length
            : throw new ImageFormatException(string.Create(CultureInfo.InvariantCulture,
                $"dmg image '{file.Filename}': the blkx table of {length} bytes at offset {offset} is larger than we read ({MaxResourceBytes >> 20} MiB)"));

    /// <summary>Reads <paramref name="buffer"/> at <paramref name="offset"/>; what lies past the end of the file reads as zeroes, as in QEMU.</summary>
    internal static async ValueTask ReadPaddedAsync(BlockNode file, ulong offset, Memory<byte> buffer)
    {
        ulong length = (ulong)file.Length;
        int stored = offset >= length ? 0 : (int)Math.Min((ulong)buffer.Length, length - offset);
        if (stored > 0)
            await file.ReadAsync((long)offset, buffer[..stored]).ConfigureAwait(false);
        buffer.Span[stored..].Clear();
    }
}
