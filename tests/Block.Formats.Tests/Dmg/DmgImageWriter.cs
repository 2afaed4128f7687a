using System.Buffers.Binary;
using System.IO.Compression;
using System.Runtime.InteropServices;
using System.Text;
using Block.Formats.Dmg;

namespace Block.Formats.Tests.Dmg;

/// <summary>
/// Writes Apple UDIF (dmg) images from the format's description, for tests (QEMU cannot create dmg images, and
/// hdiutil is macOS-only): the data fork of chunk data, the blkx (<c>mish</c>) tables, in a resource fork or an XML
/// property list, and the 512-byte "koly" trailer.
/// </summary>
/// <remarks>
/// Layout as hdiutil writes it: chunks of <see cref="ChunkSectors"/> sectors, one blkx table per partition with a
/// comment entry first and the terminator (<c>0xffffffff</c>) last, chunk offsets relative to the table's data
/// offset, which is relative to the data fork.
/// </remarks>
internal sealed partial class DmgImageWriter
{
    /// <summary>The disk's content (whole sectors).</summary>
    public required byte[] Content { get; init; }

    /// <summary>The sectors of each chunk.</summary>
    public int ChunkSectors { get; init; } = 256;

    /// <summary>How each chunk is stored, by chunk index (the default: zlib, and zeroes for all-zero chunks).</summary>
    public Func<int, byte[], DmgChunkType> TypeOf { get; init; } = (_, data) => data.AsSpan().ContainsAnyExcept((byte)0) ? DmgChunkType.Zlib : DmgChunkType.Zero;

    /// <summary>The number of blkx tables (partitions) the chunks are split into.</summary>
    public int Partitions { get; init; } = 2;

    /// <summary>True: the tables go in an XML property list only; false: in a resource fork (and no property list).</summary>
    public bool Xml { get; init; }

    /// <summary>Bytes of padding between the data fork and the file's start (the trailer's data fork offset).</summary>
    public int DataForkOffset { get; init; }

    /// <summary>The image's bytes.</summary>
    public byte[] ToArray()
    {
        using var file = new MemoryStream();
        file.Write(new byte[DataForkOffset]);
        int sectors = Content.Length / 512, chunkCount = (sectors + ChunkSectors - 1) / ChunkSectors;
        int perPartition = Math.Max(1, (chunkCount + Partitions - 1) / Partitions);
        var tables = new List<byte[]>();
        for (int first = 0; first < chunkCount; first += perPartition)
        {
            int last = Math.Min(chunkCount, first + perPartition);
            long partitionData = file.Position - DataForkOffset;
            var entries = new List<(uint Type, long Sector, long Count, long Offset, long Length)> { (0x7fff_fffe, 0, 0, 0, 0) };
            for (int c = first; c < last; c++)
            {
                int sector = c * ChunkSectors, count = Math.Min(ChunkSectors, sectors - sector);
                var data = Content.AsSpan(sector * 512, count * 512).ToArray();
                var type = TypeOf(c, data);
                byte[] stored = type switch
                {
                    DmgChunkType.Raw => data,
                    DmgChunkType.Zlib => Zlib(data),
                    DmgChunkType.Bzip2 => Bzip2(data),
                    _ => [],
                };
                long offset = file.Position - DataForkOffset - partitionData;
                file.Write(stored);
                entries.Add(((uint)type, sector - (long)first * ChunkSectors, count, offset, stored.Length));
            }
            long tableSectors = entries.Sum(e => e.Count);
            entries.Add((0xffff_ffff, tableSectors, 0, file.Position - DataForkOffset - partitionData, 0));
            tables.Add(MishBlock((long)first * ChunkSectors, tableSectors, partitionData, entries));
        }
        long dataForkLength = file.Position - DataForkOffset;
        long rsrcOffset = 0, rsrcLength = 0, xmlOffset = 0, xmlLength = 0;
        if (Xml)
        {
            xmlOffset = file.Position;
            var xml = PropertyList(tables);
            file.Write(xml);
            xmlLength = xml.Length;
        }
        else
        {
            rsrcOffset = file.Position;
            var fork = ResourceFork(tables);
            file.Write(fork);
            rsrcLength = fork.Length;
        }
        file.Write(Koly(dataForkLength, rsrcOffset, rsrcLength, xmlOffset, xmlLength, sectors, DataForkOffset));
        return file.ToArray();
    }

    /// <summary>Writes the image to <paramref name="path"/> and returns the path.</summary>
    public string WriteTo(string path)
    {
        File.WriteAllBytes(path, ToArray());
        return path;
    }

    /// <summary>A blkx table: the 204-byte header, then 40 bytes per entry.</summary>
    public static byte[] MishBlock(long firstSector, long sectorCount, long dataOffset, IReadOnlyList<(uint Type, long Sector, long Count, long Offset, long Length)> entries)
    {
        var b = new byte[204 + 40 * entries.Count];
        "mish"u8.CopyTo(b);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(4), 1);
        BinaryPrimitives.WriteInt64BigEndian(b.AsSpan(8), firstSector);
        BinaryPrimitives.WriteInt64BigEndian(b.AsSpan(16), sectorCount);
        BinaryPrimitives.WriteInt64BigEndian(b.AsSpan(24), dataOffset);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(32), 2056);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(36), 0);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(64), 2);      // checksum type CRC32, left zero
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(68), 32);
        BinaryPrimitives.WriteUInt32BigEndian(b.AsSpan(200), (uint)entries.Count);
        for (int i = 0; i < entries.Count; i++)
        {
            var e = b.AsSpan(204 + 40 * i, 40);
            BinaryPrimitives.WriteUInt32BigEndian(e, entries[i].Type);
            BinaryPrimitives.WriteInt64BigEndian(e[8..], entries[i].Sector);
            BinaryPrimitives.WriteInt64BigEndian(e[16..], entries[i].Count);
            BinaryPrimitives.WriteInt64BigEndian(e[24..], entries[i].Offset);
            BinaryPrimitives.WriteInt64BigEndian(e[32..], entries[i].Length);
        }
        return b;
    }

    /// <summary>A resource fork: a 256-byte header, the resource data (each resource after its u32 length), an empty map.</summary>
    public static byte[] ResourceFork(IReadOnlyList<byte[]> resources)
    {
        using var data = new MemoryStream();
        // A resource that is not a blkx table first, as real images have ('plst'): skipped by its magic.
        foreach (var r in resources.Prepend(new byte[50]))
        {
            var length = new byte[4];
            BinaryPrimitives.WriteUInt32BigEndian(length, (uint)r.Length);
            data.Write(length);
            data.Write(r);
        }
        var fork = new byte[256 + data.Length + 30];
        BinaryPrimitives.WriteUInt32BigEndian(fork, 256);
        BinaryPrimitives.WriteUInt32BigEndian(fork.AsSpan(4), (uint)(256 + data.Length));
        BinaryPrimitives.WriteUInt32BigEndian(fork.AsSpan(8), (uint)data.Length);
        BinaryPrimitives.WriteUInt32BigEndian(fork.AsSpan(12), 30);
        data.ToArray().CopyTo(fork, 256);
        return fork;
    }

    /// <summary>An XML property list as hdiutil writes it: the blkx tables in base64 <c>Data</c> keys, 52 characters a line.</summary>
    public static byte[] PropertyList(IReadOnlyList<byte[]> tables)
    {
        var xml = new StringBuilder();
        xml.Append("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n");
        xml.Append("<plist version=\"1.0\">\n<dict>\n\t<key>resource-fork</key>\n\t<dict>\n\t\t<key>blkx</key>\n\t\t<array>\n");
        for (int i = 0; i < tables.Count; i++)
        {
            string b64 = Convert.ToBase64String(tables[i]);
            xml.Append("\t\t\t<dict>\n\t\t\t\t<key>Attributes</key>\n\t\t\t\t<string>0x0050</string>\n\t\t\t\t<key>Data</key>\n\t\t\t\t<data>\n");
            for (int at = 0; at < b64.Length; at += 52)
                xml.Append("\t\t\t\t").Append(b64.AsSpan(at, Math.Min(52, b64.Length - at))).Append('\n');
            xml.Append("\t\t\t\t</data>\n\t\t\t\t<key>ID</key>\n\t\t\t\t<string>").Append(i).Append("</string>\n\t\t\t\t<key>Name</key>\n\t\t\t\t<string>partition ").Append(i).Append("</string>\n\t\t\t</dict>\n");
        }
        // A plst resource, which is no blkx table: base64 QEMU decodes and skips.
        xml.Append("\t\t</array>\n\t\t<key>plst</key>\n\t\t<array>\n\t\t\t<dict>\n\t\t\t\t<key>Data</key>\n\t\t\t\t<data>\n\t\t\t\tAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n\t\t\t\t</data>\n\t\t\t</dict>\n\t\t</array>\n\t</dict>\n</dict>\n</plist>\n");
        return Encoding.UTF8.GetBytes(xml.ToString());
    }

    /// <summary>The 512-byte UDIF trailer.</summary>
    public static byte[] Koly(long dataForkLength, long rsrcOffset, long rsrcLength, long xmlOffset, long xmlLength, long sectors, long dataForkOffset = 0)
    {
        var k = new byte[512];
        "koly"u8.CopyTo(k);
        BinaryPrimitives.WriteUInt32BigEndian(k.AsSpan(4), 4);
        BinaryPrimitives.WriteUInt32BigEndian(k.AsSpan(8), 512);
        BinaryPrimitives.WriteUInt32BigEndian(k.AsSpan(12), 1);
        BinaryPrimitives.WriteInt64BigEndian(k.AsSpan(0x18), dataForkOffset);
        BinaryPrimitives.WriteInt64BigEndian(k.AsSpan(0x20), dataForkLength);
        BinaryPrimitives.WriteInt64BigEndian(k.AsSpan(0x28), rsrcOffset);
        BinaryPrimitives.WriteInt64BigEndian(k.AsSpan(0x30), rsrcLength);
        BinaryPrimitives.WriteUInt32BigEndian(k.AsSpan(0x38), 1);
        BinaryPrimitives.WriteUInt32BigEndian(k.AsSpan(0x3c), 1);
        BinaryPrimitives.WriteInt64BigEndian(k.AsSpan(0xd8), xmlOffset);
        BinaryPrimitives.WriteInt64BigEndian(k.AsSpan(0xe0), xmlLength);
        BinaryPrimitives.WriteUInt32BigEndian(k.AsSpan(0x1e8), 1);
        BinaryPrimitives.WriteInt64BigEndian(k.AsSpan(0x1ec), sectors);
        return k;
    }

    /// <summary>zlib's format (RFC 1950), as hdiutil's UDZO chunks hold it.</summary>
    public static byte[] Zlib(byte[] data)
    {
        using var output = new MemoryStream();
        using (var z = new ZLibStream(output, CompressionLevel.Optimal, leaveOpen: true))
            z.Write(data);
        return output.ToArray();
    }

    /// <summary>bzip2 through the system libbz2 (<c>BZ2_bzBuffToBuffCompress</c>, 900k blocks), as UDBZ chunks hold it.</summary>
    public static unsafe byte[] Bzip2(byte[] data)
    {
        var output = new byte[data.Length + data.Length / 100 + 600];
        uint length = (uint)output.Length;
        fixed (byte* dst = output)
        fixed (byte* src = data)
        {
            int rc = BuffToBuffCompress(dst, &length, src, (uint)data.Length, 9, 0, 0);
            if (rc != 0)
                throw new InvalidOperationException($"BZ2_bzBuffToBuffCompress failed ({rc})");
        }
        return output.AsSpan(0, (int)length).ToArray();
    }

    [LibraryImport("libbz2.so.1.0", EntryPoint = "BZ2_bzBuffToBuffCompress")]
    private static unsafe partial int BuffToBuffCompress(byte* dest, uint* destLen, byte* source, uint sourceLen, int blockSize100k, int verbosity, int workFactor);
}
