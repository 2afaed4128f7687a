using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;
using Block.Vmdk.Format;

namespace Block.Vmdk.Tests;

/// <summary>
/// Writes a streamOptimized image the way VMware does (and QEMU does not): the header says the grain directory is
/// at the end, grains are followed by grain-table and grain-directory markers, then a footer (a copy of the header
/// with the real offsets) and an end-of-stream marker.
/// </summary>
internal static class VmwareStreamImage
{
    private const int Granularity = 128;
    private const int GrainBytes = Granularity * 512;
    private const int TableEntries = 512;

    /// <summary>Writes <paramref name="content"/> (a multiple of 512 bytes) as a VMware-style stream; all-zero grains are left out.</summary>
    public static void Write(string path, byte[] content)
    {
        long capacity = content.Length / 512;
        int grains = (int)((content.Length + GrainBytes - 1) / GrainBytes);
        int tables = (grains + TableEntries - 1) / TableEntries;
        var entries = new uint[tables * TableEntries];
        using var f = File.Create(path);
        var header = new SparseExtentHeader(3, SparseExtentFlags.ValidNewlineTest | SparseExtentFlags.CompressedGrains | SparseExtentFlags.Markers,
            (ulong)capacity, Granularity, 1, 20, TableEntries, 0, SparseExtentHeader.GrainDirectoryAtEnd, 128, 0, SparseExtentHeader.CompressionDeflate);
        var sector = new byte[512];
        header.Write(sector);
        f.Write(sector);
        var descriptor = new byte[20 * 512];
        Encoding.ASCII.GetBytes($"# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"streamOptimized\"\n\n# Extent description\nRW {capacity} SPARSE \"{Path.GetFileName(path)}\"\n\n# The Disk Data Base\n#DDB\n\nddb.adapterType = \"lsilogic\"\n").CopyTo(descriptor, 0);
        f.Write(descriptor);
        f.Write(new byte[(128 - 21) * 512]);

        for (int g = 0; g < grains; g++)
        {
            int start = g * GrainBytes;
            var grain = content.AsSpan(start, Math.Min(GrainBytes, content.Length - start));
            if (!grain.ContainsAnyExcept((byte)0))
                continue;
            entries[g] = (uint)(f.Position / 512);
            using var compressed = new MemoryStream();
            using (var z = new ZLibStream(compressed, CompressionLevel.Optimal, leaveOpen: true))
                z.Write(grain);
            var marker = new byte[12];
            StreamMarker.WriteGrain(marker, (ulong)g * Granularity, (uint)compressed.Length);
            f.Write(marker);
            f.Write(compressed.ToArray());
            Pad(f);
        }

        var directory = new uint[tables];
        for (int t = 0; t < tables; t++)
        {
            StreamMarker.WriteMetadata(sector, TableEntries * 4 / 512, StreamMarkerType.GrainTable);
            f.Write(sector);
            directory[t] = (uint)(f.Position / 512);
            var table = new byte[TableEntries * 4];
            for (int i = 0; i < TableEntries; i++)
                BinaryPrimitives.WriteUInt32LittleEndian(table.AsSpan(i * 4), entries[t * TableEntries + i]);
            f.Write(table);
        }
        int directorySectors = (tables * 4 + 511) / 512;
        StreamMarker.WriteMetadata(sector, (ulong)directorySectors, StreamMarkerType.GrainDirectory);
        f.Write(sector);
        long directorySector = f.Position / 512;
        var gd = new byte[directorySectors * 512];
        for (int t = 0; t < tables; t++)
            BinaryPrimitives.WriteUInt32LittleEndian(gd.AsSpan(t * 4), directory[t]);
        f.Write(gd);

        StreamMarker.WriteMetadata(sector, 1, StreamMarkerType.Footer);
        f.Write(sector);
        (header with { GrainDirectorySector = (ulong)directorySector }).Write(sector);
        f.Write(sector);
        StreamMarker.WriteMetadata(sector, 0, StreamMarkerType.EndOfStream);
        f.Write(sector);
    }

    private static void Pad(FileStream f)
    {
        int rest = (int)(f.Position % 512);
        if (rest != 0)
            f.Write(new byte[512 - rest]);
    }
}
