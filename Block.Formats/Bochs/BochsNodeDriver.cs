using Block.Drivers;
using Block.Graph;
using Block.Io;

namespace Block.Formats.Bochs;

/// <summary>
/// One open bochs image, read-only: its catalog in memory, and for each allocated extent a slot in the file holding
/// a sector bitmap (bit set: the sector is stored) and then the extent's data.
/// </summary>
/// <remarks>
/// A read looks up the catalog entry of each extent it touches, reads the bitmap bytes of the sectors it covers in one
/// request, and then reads each run of stored sectors in one request and zero-fills the runs in between: a 64 KiB
/// read of a fully written extent is two file requests, where a sector-at-a-time walk would be 256.
/// </remarks>
internal sealed class BochsNodeDriver : NodeDriver, IBlockReader
{
    private const uint Unallocated = 0xffff_ffff;

    private readonly BlockNode _file;
    private readonly BochsHeader _header;
    private readonly uint[] _catalog;
    private readonly int _extentShift;
    private readonly long _dataOffset;
    private readonly long _slotSectors;

    public BochsNodeDriver(BlockNode node, BlockNode file, BochsHeader header, uint[] catalog)
        : base(node)
    {
        _file = file;
        _header = header;
        _catalog = catalog;
        _extentShift = System.Numerics.BitOperations.Log2(header.ExtentSize);
        _dataOffset = header.DataOffset;
        _slotSectors = header.SlotSectors;
    }

    public override BlockLimits Limits => new() { RequestAlignment = 512 };

    public override long Length => _header.DiskSize;

    /// <remarks>QEMU's bochs driver has no driver information: <c>qemu-img info</c> shows no dirty flag.</remarks>
    public override bool HasDriverInfo => false;

    public override ValueTask ReadAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        int inExtent = (int)(offset & (_header.ExtentSize - 1));
        if (inExtent + buffers.Length <= _header.ExtentSize && _catalog[offset >> _extentShift] == Unallocated)
        {
            buffers.Clear();
            return default;
        }
        return BlockSpans.ReadAsync(this, _extentShift, offset, buffers);
    }

    ValueTask IBlockReader.ReadInBlockAsync(long block, long inBlock, IoVector buffers) => ReadInExtentAsync(block, (int)inBlock, buffers);

    private async ValueTask ReadInExtentAsync(long extent, int inExtent, IoVector buffers)
    {
        uint entry = _catalog[extent];
        // Slots past the end of the file read as zeroes, as they do in QEMU; one so far out that its offset does not
        // fit in 64 bits is past the end too.
        ulong slotSector = (ulong)entry * (ulong)_slotSectors;
        if (entry == Unallocated || slotSector > (ulong)(_file.Length - _dataOffset) / 512)
        {
            buffers.Clear();
            return;
        }
        long slot = _dataOffset + (long)slotSector * 512;
        int firstSector = inExtent / 512, sectors = buffers.Length / 512;
        int firstByte = firstSector / 8, bitmapBytes = (firstSector + sectors - 1) / 8 - firstByte + 1;
        var bitmap = Node.Graph.Buffers.Rent(bitmapBytes);
        try
        {
            await _file.ReadAsync(slot + firstByte, bitmap.Memory[..bitmapBytes]).ConfigureAwait(false);
            long data = slot + (long)_header.BitmapSectors * 512 + inExtent;
            int i = 0;
            while (i < sectors)
            {
                bool stored = IsStored(bitmap.Span, firstSector - firstByte * 8 + i);
                int run = 1;
                while (i + run < sectors && IsStored(bitmap.Span, firstSector - firstByte * 8 + i + run) == stored)
                    run++;
                var part = buffers.Slice(i * 512, run * 512);
                if (stored)
                    await _file.ReadAsync(data + i * 512L, part).ConfigureAwait(false);
                else
                    part.Clear();
                i += run;
            }
        }
        finally
        {
            bitmap.Return(clear: false);
        }
    }

    /// <summary>Bit <paramref name="sector"/> of the bitmap, least significant bit first, as Bochs stores it.</summary>
    private static bool IsStored(ReadOnlySpan<byte> bitmap, int sector) => (bitmap[sector >> 3] & (1 << (sector & 7))) != 0;
}
