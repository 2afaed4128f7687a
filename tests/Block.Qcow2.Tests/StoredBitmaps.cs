using System.Buffers.Binary;
using System.Text;

namespace Block.Qcow2.Tests;

/// <summary>
/// Reads the persistent bitmaps straight from an image file, following the qcow2 spec and nothing of the library:
/// the bitmaps extension, the directory, each table and its data clusters. What a bitmap says is given as the byte
/// ranges of the disk its set bits cover, adjacent groups joined.
/// </summary>
internal static class StoredBitmaps
{
    public const uint Extension = 0x23852875;

    public sealed record Stored(string Name, uint Flags, int GranularityBits, long TableOffset, uint TableSize, List<(long Offset, long Length)> Dirty);

    /// <summary>Offset of the bitmap directory, or -1 without the extension.</summary>
    public static long DirectoryOffset(string path)
    {
        long ext = ImageFile.FindExtension(path, Extension);
        return ext < 0 ? -1 : (long)ImageFile.PeekBe64(path, ext + 16);
    }

    public static List<Stored> Read(string path)
    {
        var file = File.ReadAllBytes(path);
        int clusterBits = (int)BinaryPrimitives.ReadUInt32BigEndian(file.AsSpan(20));
        int cs = 1 << clusterBits;
        long disk = (long)BinaryPrimitives.ReadUInt64BigEndian(file.AsSpan(24));
        long ext = ImageFile.FindExtension(path, Extension);
        var result = new List<Stored>();
        if (ext < 0)
            return result;
        uint count = BinaryPrimitives.ReadUInt32BigEndian(file.AsSpan((int)ext));
        long dir = (long)BinaryPrimitives.ReadUInt64BigEndian(file.AsSpan((int)ext + 16));
        int pos = (int)dir;
        for (uint i = 0; i < count; i++)
        {
            long tableOffset = (long)BinaryPrimitives.ReadUInt64BigEndian(file.AsSpan(pos));
            uint tableSize = BinaryPrimitives.ReadUInt32BigEndian(file.AsSpan(pos + 8));
            uint flags = BinaryPrimitives.ReadUInt32BigEndian(file.AsSpan(pos + 12));
            int granularityBits = file[pos + 17];
            int nameSize = BinaryPrimitives.ReadUInt16BigEndian(file.AsSpan(pos + 18));
            uint extra = BinaryPrimitives.ReadUInt32BigEndian(file.AsSpan(pos + 20));
            string name = Encoding.UTF8.GetString(file, pos + 24 + (int)extra, nameSize);
            long bits = (disk + (1L << granularityBits) - 1) >> granularityBits;
            var dirty = new List<(long, long)>();
            for (long entryIndex = 0; entryIndex < tableSize; entryIndex++)
            {
                ulong entry = BinaryPrimitives.ReadUInt64BigEndian(file.AsSpan((int)(tableOffset + entryIndex * 8)));
                long host = (long)(entry & 0x00fffffffffffe00UL);
                if (host == 0 && (entry & 1) == 0)
                    continue;
                long firstBit = entryIndex * cs * 8;
                for (long bit = firstBit; bit < Math.Min(bits, firstBit + cs * 8L); bit++)
                {
                    long inCluster = (bit - firstBit) / 8;
                    if (host != 0 && (file[host + inCluster] >> (int)(bit % 8) & 1) == 0)
                        continue;
                    long begin = bit << granularityBits;
                    long end = Math.Min(disk, (bit + 1) << granularityBits);
                    if (dirty.Count > 0 && dirty[^1].Item1 + dirty[^1].Item2 == begin)
                        dirty[^1] = (dirty[^1].Item1, end - dirty[^1].Item1);
                    else
                        dirty.Add((begin, end - begin));
                }
            }
            result.Add(new Stored(name, flags, granularityBits, tableOffset, tableSize, dirty));
            pos += (24 + (int)extra + nameSize + 7) & ~7;
        }
        return result;
    }

    /// <summary>The ranges covered by the groups of 2^<paramref name="granularityBits"/> bytes that the requests touch.</summary>
    public static List<(long Offset, long Length)> Expected(long disk, int granularityBits, params (long Offset, long Length)[] requests)
    {
        long bits = (disk + (1L << granularityBits) - 1) >> granularityBits;
        var set = new bool[bits];
        foreach (var (offset, length) in requests)
        {
            for (long g = offset >> granularityBits; g <= (offset + length - 1) >> granularityBits; g++)
                set[g] = true;
        }
        var dirty = new List<(long, long)>();
        for (long bit = 0; bit < bits; bit++)
        {
            if (!set[bit])
                continue;
            long start = bit;
            while (bit + 1 < bits && set[bit + 1])
                bit++;
            long begin = start << granularityBits;
            dirty.Add((begin, Math.Min(disk, (bit + 1) << granularityBits) - begin));
        }
        return dirty;
    }
}
