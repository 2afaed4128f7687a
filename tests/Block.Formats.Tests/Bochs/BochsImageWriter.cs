using System.Buffers.Binary;
using System.Text;

namespace Block.Formats.Tests.Bochs;

/// <summary>
/// Writes Bochs "growing" redolog images from the format's description (Bochs' <c>redolog</c> layout: a 512-byte
/// little-endian header, a catalog of u32 extent slots, then per slot a sector bitmap and the extent's data), for
/// tests: QEMU cannot create bochs images.
/// </summary>
internal sealed class BochsImageWriter
{
    private readonly SortedDictionary<int, SortedDictionary<int, byte[]>> _extents = [];

    /// <summary>The virtual disk size in bytes.</summary>
    public required long DiskSize { get; init; }

    /// <summary>The bytes of disk per catalog entry.</summary>
    public uint ExtentSize { get; init; } = 64 << 10;

    /// <summary>Header version: 0x20000 (v2) or 0x10000 (v1, the size at offset 84).</summary>
    public uint Version { get; init; } = 0x2_0000;

    /// <summary>Catalog entries; by default one per extent of the disk.</summary>
    public uint? CatalogEntries { get; init; }

    /// <summary>The bitmap bytes of each slot; by default one bit per sector of an extent.</summary>
    public uint? BitmapBytes { get; init; }

    /// <summary>The header size field (where the catalog starts).</summary>
    public uint HeaderSize { get; init; } = 512;

    /// <summary>Stores sector <paramref name="sector"/> of the disk with <paramref name="data"/> (512 bytes).</summary>
    public BochsImageWriter Sector(long sector, byte[] data)
    {
        int extent = (int)(sector * 512 / ExtentSize), inExtent = (int)(sector % (ExtentSize / 512));
        if (!_extents.TryGetValue(extent, out var sectors))
            _extents[extent] = sectors = [];
        sectors[inExtent] = data;
        return this;
    }

    /// <summary>Stores <paramref name="data"/> (whole sectors) from disk offset <paramref name="offset"/>.</summary>
    public BochsImageWriter Data(long offset, byte[] data)
    {
        for (int i = 0; i < data.Length; i += 512)
            Sector((offset + i) / 512, data.AsSpan(i, 512).ToArray());
        return this;
    }

    /// <summary>The image's bytes. Slots follow the catalog in extent order.</summary>
    public byte[] ToArray()
    {
        uint extentSectors = ExtentSize / 512;
        uint entries = CatalogEntries ?? (uint)((DiskSize + ExtentSize - 1) / ExtentSize);
        uint bitmapBytes = BitmapBytes ?? Math.Max(1, (extentSectors + 7) / 8);
        int bitmapSectors = (int)(1 + (bitmapBytes - 1) / 512);
        var header = new byte[Math.Max(512, HeaderSize)];
        Encoding.ASCII.GetBytes("Bochs Virtual HD Image").CopyTo(header, 0);
        Encoding.ASCII.GetBytes("Redolog").CopyTo(header, 32);
        Encoding.ASCII.GetBytes("Growing").CopyTo(header, 48);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(64), Version);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(68), HeaderSize);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(72), entries);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(76), bitmapBytes);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(80), ExtentSize);
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(Version == 0x1_0000 ? 84 : 88), (ulong)DiskSize);

        var catalog = new byte[entries * 4];
        catalog.AsSpan().Fill(0xff);
        using var slots = new MemoryStream();
        uint slot = 0;
        foreach (var (extent, sectors) in _extents)
        {
            BinaryPrimitives.WriteUInt32LittleEndian(catalog.AsSpan(extent * 4), slot++);
            var bitmap = new byte[bitmapSectors * 512];
            // Sectors the bitmap does not mark hold garbage: a reader must return zeroes for them, not this.
            var data = new byte[ExtentSize];
            data.AsSpan().Fill(0xee);
            foreach (var (sector, bytes) in sectors)
            {
                bitmap[sector / 8] |= (byte)(1 << (sector % 8));
                bytes.CopyTo(data, sector * 512);
            }
            slots.Write(bitmap);
            slots.Write(data);
        }
        return [.. header.AsSpan(0, (int)Math.Max(512, HeaderSize)), .. catalog, .. slots.ToArray()];
    }

    /// <summary>Writes the image to <paramref name="path"/> and returns the path.</summary>
    public string WriteTo(string path)
    {
        File.WriteAllBytes(path, ToArray());
        return path;
    }
}
