using System.Buffers.Binary;
using System.Globalization;

namespace Block.Formats.Dmg;

/// <summary>
/// Every chunk of a dmg image, in the order its <c>mish</c> (blkx) tables list them, gathered and checked as QEMU
/// gathers them, and looked up by disk sector with QEMU's binary search.
/// </summary>
/// <remarks>
/// QEMU neither sorts the chunks nor checks that they do not overlap: it searches them as if sorted and keeps the last
/// chunk it read. Doing the same gives the same bytes for a table out of order. A chunk costs 40 bytes here, as in the
/// file, so the table is bounded by the file's size: a property list with a million chunks takes 40 MB of memory
/// because it takes 40 MB of file (or more, in base64).
/// </remarks>
internal sealed class DmgChunkTable
{
    /// <summary>The most bytes QEMU lets a chunk store, or decompress to: 64 MiB.</summary>
    public const uint MaxLength = 64 << 20;

    /// <summary>The most sectors of a chunk that is not zeroes: 64 MiB of them.</summary>
    public const uint MaxSectorCount = MaxLength / 512;

    private const uint MishMagic = 0x6d69_7368;
    private const int MishMinimum = 244, ChunksAt = 204, ChunkSize = 40;

    private DmgChunk[] _chunks = [];
    private int _count;
    private bool _warnedUnknown;

    /// <summary>The number of chunks.</summary>
    public int Count => _count;

    /// <summary>Chunk <paramref name="index"/>.</summary>
    public ref readonly DmgChunk this[int index] => ref _chunks[index];

    /// <summary>
    /// Adds the chunks of one blkx resource. Data that is not a mish block (another magic, or shorter than its header
    /// and one chunk) is skipped, as QEMU skips it, and so are chunks of unknown types (comments, the terminator).
    /// </summary>
    /// <param name="block">The resource's bytes.</param>
    /// <param name="dataForkOffset">The trailer's data fork offset, which every chunk offset is relative to.</param>
    /// <param name="refuse">
    /// Reports QEMU's message for a chunk it refuses (its <c>error_report</c>) and returns the open's error to throw.
    /// </param>
    /// <param name="warn">Prints QEMU's warning (once per image) about chunks it cannot read.</param>
    /// <exception cref="BlockException">A chunk stores or decompresses to more than 64 MiB (EINVAL).</exception>
    public void AddMishBlock(ReadOnlySpan<byte> block, ulong dataForkOffset, Func<string, Exception> refuse, Action<string> warn)
    {
        if (block.Length < 4 || BinaryPrimitives.ReadUInt32BigEndian(block) != MishMagic || block.Length < MishMinimum)
            return;
        ulong firstSector = BinaryPrimitives.ReadUInt64BigEndian(block[8..]);
        ulong dataOffset = unchecked(dataForkOffset + BinaryPrimitives.ReadUInt64BigEndian(block[0x18..]));
        int entries = (block.Length - ChunksAt) / ChunkSize;
        EnsureCapacity(_count + entries);
        for (int e = 0; e < entries; e++)
        {
            var entry = block.Slice(ChunksAt + e * ChunkSize, ChunkSize);
            var type = (DmgChunkType)BinaryPrimitives.ReadUInt32BigEndian(entry);
            if (!IsKnown(type))
            {
                WarnUnknown(type, warn);
                continue;
            }
            ulong sector = unchecked(BinaryPrimitives.ReadUInt64BigEndian(entry[8..]) + firstSector);
            ulong sectorCount = BinaryPrimitives.ReadUInt64BigEndian(entry[0x10..]);
            // Zero and ignored chunks need no buffer, so QEMU leaves their count unbounded.
            if (type is not (DmgChunkType.Zero or DmgChunkType.Ignore) && sectorCount > MaxSectorCount)
                throw refuse(string.Create(CultureInfo.InvariantCulture, $"sector count {sectorCount} for chunk {_count} is larger than max ({MaxSectorCount})"));
            ulong offset = unchecked(BinaryPrimitives.ReadUInt64BigEndian(entry[0x18..]) + dataOffset);
            ulong length = BinaryPrimitives.ReadUInt64BigEndian(entry[0x20..]);
            if (length > MaxLength)
                throw refuse(string.Create(CultureInfo.InvariantCulture, $"length {length} for chunk {_count} is larger than max ({MaxLength})"));
            _chunks[_count++] = new DmgChunk(type, sector, sectorCount, offset, length);
        }
    }

    /// <summary>
    /// The chunk holding <paramref name="sector"/> by QEMU's binary search (which assumes the chunks sorted), or -1.
    /// </summary>
    public int Search(ulong sector)
    {
        // Bounds as QEMU's search, whose upper bound starts one past the last chunk; that index holds no chunk here.
        long low = 0, high = _count;
        while (low <= high)
        {
            long middle = (low + high) / 2;
            if (middle >= _count)
                return -1;
            ref readonly var chunk = ref _chunks[middle];
            if (chunk.Sector > sector)
            {
                if (middle == 0)
                    return -1;
                high = middle - 1;
            }
            else if (chunk.Sector + chunk.SectorCount > sector)
            {
                return (int)middle;
            }
            else
            {
                low = middle + 1;
            }
        }
        return -1;
    }

    /// <summary>True if the image has lzfse chunks, which are left out (their sectors fail to read).</summary>
    public bool HasLzfse { get; private set; }

    /// <summary>
    /// The chunk types read here: QEMU 7.2's with its bzip2 module. lzfse is left out, as QEMU leaves it out without
    /// its lzfse module: there is no lzfse library here.
    /// </summary>
    private static bool IsKnown(DmgChunkType type) =>
        type is DmgChunkType.Zero or DmgChunkType.Raw or DmgChunkType.Ignore or DmgChunkType.Zlib or DmgChunkType.Bzip2;

    /// <summary>QEMU's warnings for the chunks it skips, each printed once; comments and the terminator are skipped silently.</summary>
    private void WarnUnknown(DmgChunkType type, Action<string> warn)
    {
        const uint comment = 0x7fff_fffe, last = 0xffff_ffff;
        if ((uint)type is comment or last)
            return;
        if (type == DmgChunkType.Lzfse)
        {
            if (!HasLzfse)
                warn("dmg-lzfse module is missing, accessing lzfse compressed blocks will result in I/O errors");
            HasLzfse = true;
        }
        else if (!_warnedUnknown)
        {
            _warnedUnknown = true;
            warn(string.Create(CultureInfo.InvariantCulture, $"Image contains chunks of unknown type {(uint)type:x}, accessing them will result in I/O errors"));
        }
    }

    private void EnsureCapacity(int count)
    {
        if (count > _chunks.Length)
            Array.Resize(ref _chunks, Math.Max(count, _chunks.Length * 2));
    }
}
