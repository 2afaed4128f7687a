using System.Buffers.Binary;
using System.Globalization;
using Block.Graph;

namespace Block.Formats.Vhdx;

/// <summary>
/// What the region table and the metadata region of a VHDX image say: where the BAT is, the block and sector sizes,
/// the virtual size, and the BAT's geometry (payload blocks and the sector-bitmap entry after each chunk).
/// </summary>
/// <param name="BatOffset">Where the BAT region starts in the file.</param>
/// <param name="BatLength">The BAT region's bytes.</param>
/// <param name="MetadataOffset">Where the metadata region starts.</param>
/// <param name="BlockSize">The payload block size, a power of two from 1 MiB to 256 MiB.</param>
/// <param name="LeaveBlocksAllocated">The file parameter of fixed images.</param>
/// <param name="VirtualSize">The virtual disk size in bytes.</param>
/// <param name="LogicalSectorSize">512 or 4096.</param>
/// <param name="PhysicalSectorSize">512 or 4096.</param>
internal sealed record VhdxLayout(long BatOffset, long BatLength, long MetadataOffset, int BlockSize, bool LeaveBlocksAllocated,
    long VirtualSize, int LogicalSectorSize, int PhysicalSectorSize)
{
    /// <summary>1 MiB, the unit of every region, block and log in the file.</summary>
    public const long MiB = 1 << 20;

    /// <summary>The largest virtual size: 64 TiB.</summary>
    public const long MaxVirtualSize = 64L << 40;

    /// <summary>The region table (the first copy; QEMU reads only this one).</summary>
    public const long RegionTable1Offset = 192 * 1024;

    /// <summary>The second copy of the region table.</summary>
    public const long RegionTable2Offset = 256 * 1024;

    /// <summary>The bytes of a region table.</summary>
    public const int RegionTableSize = 64 * 1024;

    /// <summary>The bytes of the metadata table at the start of the metadata region.</summary>
    public const int MetadataTableSize = 64 * 1024;

    /// <summary>The BAT region's GUID.</summary>
    public static readonly Guid BatGuid = new("2DC27766-F623-4200-9D64-115E9BFD4A08");

    /// <summary>The metadata region's GUID.</summary>
    public static readonly Guid MetadataGuid = new("8B7CA206-4790-4B9A-B8FE-575F050F886E");

    /// <summary>The file parameters item (block size, flags).</summary>
    public static readonly Guid FileParametersGuid = new("CAA16737-FA36-4D43-B3B6-33F0AA44E76B");

    /// <summary>The virtual disk size item.</summary>
    public static readonly Guid VirtualDiskSizeGuid = new("2FA54224-CD1B-4876-B211-5DBED83BF4B8");

    /// <summary>The page 83 data item (the disk's SCSI identifier).</summary>
    public static readonly Guid Page83Guid = new("BECA12AB-B2E6-4523-93EF-C309E000C746");

    /// <summary>The logical sector size item.</summary>
    public static readonly Guid LogicalSectorSizeGuid = new("8141BF1D-A96F-4709-BA47-F233A8FAAB5F");

    /// <summary>The physical sector size item.</summary>
    public static readonly Guid PhysicalSectorSizeGuid = new("CDA348C7-445D-4471-9CC9-E9885251C556");

    /// <summary>The parent locator item of differencing images.</summary>
    public static readonly Guid ParentLocatorGuid = new("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C");

    private const uint RegionSignature = 0x69676572; // "regi"
    private const ulong MetadataSignature = 0x617461646174656d; // "metadata"
    private const int MaxEntries = 2047;

    /// <summary>log2 of <see cref="BlockSize"/>.</summary>
    public int BlockShift => System.Numerics.BitOperations.Log2((uint)BlockSize);

    /// <summary>Payload blocks per chunk: a sector bitmap entry follows every this many payload entries.</summary>
    public long ChunkRatio => (1L << 23) * LogicalSectorSize / BlockSize;

    /// <summary>The payload blocks of the virtual disk.</summary>
    public long PayloadBlocks => (VirtualSize + BlockSize - 1) / BlockSize;

    /// <summary>The BAT's entries: every payload block's and the sector bitmap entries between chunks.</summary>
    public long BatEntries => PayloadBlocks == 0 ? 0 : PayloadBlocks + (PayloadBlocks - 1) / ChunkRatio;

    /// <summary>The BAT index of payload block <paramref name="block"/>.</summary>
    public long BatIndex(long block) => block + block / ChunkRatio;

    /// <summary>
    /// Parses the region table and reads the metadata items of the image in <paramref name="file"/>, bounding every
    /// offset and size by the file and by the format's limits.
    /// </summary>
    /// <exception cref="ImageFormatException">A field is out of range; the message names it.</exception>
    public static async ValueTask<VhdxLayout> ReadAsync(BlockNode file, VhdxHeader header)
    {
        long fileLength = file.Length;
        var table = await ReadBoundedAsync(file, RegionTable1Offset, RegionTableSize).ConfigureAwait(false);
        if (BinaryPrimitives.ReadUInt32LittleEndian(table) != RegionSignature || !VhdxChecksum.IsValid(table, 4))
            throw Invalid(file, "region table 1 at 192 KiB has a bad signature or checksum");
        uint count = BinaryPrimitives.ReadUInt32LittleEndian(table.AsSpan(8));
        if (count > MaxEntries)
            throw Invalid(file, string.Create(CultureInfo.InvariantCulture, $"region table entry count {count} is over {MaxEntries}"));
        (long Offset, long Length)? bat = null, metadata = null;
        var seen = new List<(long Offset, long Length)>();
        if (header.LogLength != 0)
            seen.Add(((long)header.LogOffset, header.LogLength));
        for (int i = 0; i < count; i++)
        {
            var e = table.AsSpan(16 + i * 32, 32);
            var guid = new Guid(e[..16]);
            long offset = (long)Math.Min(BinaryPrimitives.ReadUInt64LittleEndian(e[16..]), long.MaxValue);
            long length = BinaryPrimitives.ReadUInt32LittleEndian(e[24..]);
            bool required = (BinaryPrimitives.ReadUInt32LittleEndian(e[28..]) & 1) != 0;
            if (offset % MiB != 0 || length % MiB != 0 || offset < MiB)
                throw Invalid(file, string.Create(CultureInfo.InvariantCulture, $"region {guid} at 0x{offset:x} of 0x{length:x} bytes is not aligned to 1 MiB or lies in the header section"));
            if (offset > fileLength || length > fileLength - offset)
                throw Invalid(file, string.Create(CultureInfo.InvariantCulture, $"region {guid} at 0x{offset:x} of 0x{length:x} bytes ends past the end of the file ({fileLength} bytes)"));
            foreach (var (o, l) in seen)
            {
                if (offset < o + l && o < offset + length)
                    throw Invalid(file, string.Create(CultureInfo.InvariantCulture, $"region {guid} at 0x{offset:x} overlaps another region or the log at 0x{o:x}"));
            }
            seen.Add((offset, length));
            if (guid == BatGuid)
                bat = bat is null ? (offset, length) : throw Invalid(file, "region table names the BAT twice");
            else if (guid == MetadataGuid)
                metadata = metadata is null ? (offset, length) : throw Invalid(file, "region table names the metadata region twice");
            else if (required)
                throw new ImageFormatException($"Unsupported VHDX image '{file.Filename}': unknown required region {guid}", Errno.ENOTSUP);
        }
        if (bat is null || metadata is null)
            throw Invalid(file, bat is null ? "region table has no BAT region" : "region table has no metadata region");
        return await ReadMetadataAsync(file, bat.Value, metadata.Value).ConfigureAwait(false);
    }

    private static async ValueTask<VhdxLayout> ReadMetadataAsync(BlockNode file, (long Offset, long Length) bat, (long Offset, long Length) region)
    {
        var table = await ReadBoundedAsync(file, region.Offset, (int)Math.Min(MetadataTableSize, region.Length)).ConfigureAwait(false);
        if (BinaryPrimitives.ReadUInt64LittleEndian(table) != MetadataSignature)
            throw Invalid(file, "metadata table has a bad signature");
        int count = BinaryPrimitives.ReadUInt16LittleEndian(table.AsSpan(10));
        if (count > MaxEntries)
            throw Invalid(file, string.Create(CultureInfo.InvariantCulture, $"metadata entry count {count} is over {MaxEntries}"));
        var items = new Dictionary<Guid, byte[]>();
        for (int i = 0; i < count; i++)
        {
            var e = table.AsSpan(32 + i * 32, 32);
            var id = new Guid(e[..16]);
            uint offset = BinaryPrimitives.ReadUInt32LittleEndian(e[16..]);
            uint length = BinaryPrimitives.ReadUInt32LittleEndian(e[20..]);
            uint flags = BinaryPrimitives.ReadUInt32LittleEndian(e[24..]);
            bool known = id == FileParametersGuid || id == VirtualDiskSizeGuid || id == Page83Guid || id == LogicalSectorSizeGuid
                || id == PhysicalSectorSizeGuid || id == ParentLocatorGuid;
            if (!known)
            {
                if ((flags & 4) != 0)
                    throw new ImageFormatException($"Unsupported VHDX image '{file.Filename}': unknown required metadata item {id}", Errno.ENOTSUP);
                continue;
            }
            if (length > MiB || (length != 0 && offset < MetadataTableSize) || offset + (long)length > region.Length)
                throw Invalid(file, string.Create(CultureInfo.InvariantCulture, $"metadata item {id} at offset 0x{offset:x} of {length} bytes lies outside the metadata region"));
            if (!items.TryAdd(id, []))
                throw Invalid(file, $"metadata item {id} appears twice");
            // The items QEMU uses are at most 16 bytes; a locator is only looked at to refuse it.
            int read = (int)Math.Min(length, 16);
            var bytes = new byte[read];
            if (read > 0)
                await file.ReadAsync(region.Offset + offset, bytes).ConfigureAwait(false);
            items[id] = bytes;
        }
        var parameters = Item(file, items, FileParametersGuid, "file parameters", 8);
        uint blockSize = BinaryPrimitives.ReadUInt32LittleEndian(parameters);
        uint parameterFlags = BinaryPrimitives.ReadUInt32LittleEndian(parameters.AsSpan(4));
        ulong virtualSize = BinaryPrimitives.ReadUInt64LittleEndian(Item(file, items, VirtualDiskSizeGuid, "virtual disk size", 8));
        Item(file, items, Page83Guid, "page 83 data", 16);
        uint logical = BinaryPrimitives.ReadUInt32LittleEndian(Item(file, items, LogicalSectorSizeGuid, "logical sector size", 4));
        uint physical = BinaryPrimitives.ReadUInt32LittleEndian(Item(file, items, PhysicalSectorSizeGuid, "physical sector size", 4));
        if ((parameterFlags & 2) != 0)
        {
            if (!items.ContainsKey(ParentLocatorGuid))
                throw Invalid(file, "the file parameters say the image has a parent, but it has no parent locator");
            throw new ImageFormatException($"Unsupported VHDX image '{file.Filename}': differencing images (with a parent) are not supported", Errno.ENOTSUP);
        }
        if (blockSize < MiB || blockSize > 256 * MiB || !uint.IsPow2(blockSize))
            throw Invalid(file, string.Create(CultureInfo.InvariantCulture, $"block size {blockSize} is not a power of two from 1 MiB to 256 MiB"));
        if (logical is not (512 or 4096))
            throw Invalid(file, string.Create(CultureInfo.InvariantCulture, $"logical sector size {logical} is not 512 or 4096"));
        if (physical is not (512 or 4096))
            throw Invalid(file, string.Create(CultureInfo.InvariantCulture, $"physical sector size {physical} is not 512 or 4096"));
        if (virtualSize > MaxVirtualSize || virtualSize % logical != 0)
            throw Invalid(file, string.Create(CultureInfo.InvariantCulture, $"virtual disk size {virtualSize} is over 64 TiB or not a multiple of the logical sector size {logical}"));
        var layout = new VhdxLayout(bat.Offset, bat.Length, region.Offset, (int)blockSize, (parameterFlags & 1) != 0, (long)virtualSize, (int)logical, (int)physical);
        if (layout.BatEntries * 8 > bat.Length)
            throw Invalid(file, string.Create(CultureInfo.InvariantCulture, $"BAT region of {bat.Length} bytes is too small for the {layout.BatEntries} entries of a {virtualSize}-byte disk"));
        return layout;
    }

    private static byte[] Item(BlockNode file, Dictionary<Guid, byte[]> items, Guid id, string name, int size)
    {
        if (!items.TryGetValue(id, out var bytes))
            throw Invalid(file, $"metadata has no {name} item");
        if (bytes.Length < size)
            throw Invalid(file, string.Create(CultureInfo.InvariantCulture, $"metadata {name} item is {bytes.Length} bytes, less than {size}"));
        return bytes;
    }

    /// <summary>Reads <paramref name="length"/> bytes at <paramref name="offset"/>, zeroes past the end of the file.</summary>
    internal static async ValueTask<byte[]> ReadBoundedAsync(BlockNode file, long offset, int length)
    {
        var bytes = new byte[length];
        long have = Math.Clamp(file.Length - offset, 0, length);
        if (have > 0)
            await file.ReadAsync(offset, bytes.AsMemory(0, (int)have)).ConfigureAwait(false);
        return bytes;
    }

    private static ImageFormatException Invalid(BlockNode file, string what) => VhdxHeaderPair.Invalid(file, what);
}
