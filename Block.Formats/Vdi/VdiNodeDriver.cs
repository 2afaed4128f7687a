using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Runtime.CompilerServices;
using Block.Drivers;
using Block.Graph;
using Block.Io;
using Block.Qapi;

namespace Block.Formats.Vdi;

/// <summary>
/// One open VDI image: its header sector, its block map in memory, and the data blocks of 1 MiB in its file.
/// </summary>
/// <remarks>
/// <para>The read and write of an allocated block look up one map entry and pass the request to the file, with no lock
/// and no allocation. Allocation is serialised by one lock: the new block is written whole (the request's data in
/// zeroes), then the header's block count, then the map sector, as QEMU orders them, so a crash leaves at worst a
/// block that no entry names.</para>
/// <para>Entries are published to readers only after the block's data is in the file, so a concurrent reader sees
/// either zeroes (the write has not happened) or the data.</para>
/// </remarks>
internal sealed class VdiNodeDriver : NodeDriver, IBlockReader
{
    private const uint Discarded = 0xffff_fffe;
    private const uint Unallocated = 0xffff_ffff;
    private const int BlockSize = VdiHeader.BlockSize;
    private const int EntriesPerSector = 512 / 4;

    private readonly BlockNode _file;
    private readonly VdiHeader _header;
    private readonly byte[] _headerSector;
    /// <summary>The map as the file holds it, in whole sectors (padding entries included, never used).</summary>
    private readonly uint[] _map;
    private readonly long _dataOffset;
    private readonly uint _blocks;
    private readonly SemaphoreSlim _allocationLock = new(1, 1);
    /// <summary>The index the next new block gets; only changed under <see cref="_allocationLock"/>.</summary>
    private uint _nextBlock;

    public VdiNodeDriver(BlockNode node, BlockNode file, VdiHeader header, byte[] headerSector, uint[] map)
        : base(node)
    {
        _file = file;
        _header = header;
        _headerSector = headerSector;
        _map = map;
        _dataOffset = header.DataOffset;
        _blocks = header.BlocksInImage;
        // A crash between the header and the map sector may leave entries past the header's count: never hand their
        // blocks out again.
        uint next = header.BlocksAllocated;
        for (int i = 0; i < _blocks; i++)
        {
            if (map[i] < _blocks && map[i] >= next)
                next = map[i] + 1;
        }
        _nextBlock = next;
    }

    public override BlockLimits Limits => new() { RequestAlignment = 512 };

    public override long Length => (long)_header.DiskSize;

    public override long? ClusterSize => BlockSize;

    public override bool? DirtyFlag => false;

    // ---- I/O --------------------------------------------------------------------------------------------------

    public override ValueTask ReadAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        int inBlock = (int)(offset & (BlockSize - 1));
        if (inBlock + buffers.Length <= BlockSize)
            return ReadInBlockAsync(offset >> VdiHeader.BlockShift, inBlock, buffers);
        return BlockSpans.ReadAsync(this, VdiHeader.BlockShift, offset, buffers);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ValueTask ReadInBlockAsync(long block, int inBlock, IoVector buffers)
    {
        uint entry = Volatile.Read(ref _map[block]);
        if (entry < _blocks)
            return _file.ReadAsync(_dataOffset + ((long)entry << VdiHeader.BlockShift) + inBlock, buffers);
        if (entry < Discarded)
            ThrowEntryOutOfRange(block, entry);
        buffers.Clear();
        return default;
    }

    ValueTask IBlockReader.ReadInBlockAsync(long block, long inBlock, IoVector buffers) => ReadInBlockAsync(block, (int)inBlock, buffers);

    public override ValueTask WriteAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        int inBlock = (int)(offset & (BlockSize - 1));
        if (inBlock + buffers.Length <= BlockSize)
        {
            long block = offset >> VdiHeader.BlockShift;
            uint entry = Volatile.Read(ref _map[block]);
            if (entry < _blocks)
                return _file.WriteAsync(_dataOffset + ((long)entry << VdiHeader.BlockShift) + inBlock, buffers);
        }
        return WriteSlowAsync(offset, buffers);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask WriteSlowAsync(long offset, IoVector buffers)
    {
        int done = 0;
        while (done < buffers.Length)
        {
            long at = offset + done;
            long block = at >> VdiHeader.BlockShift;
            int inBlock = (int)(at & (BlockSize - 1));
            int n = Math.Min(buffers.Length - done, BlockSize - inBlock);
            var part = buffers.Slice(done, n);
            uint entry = Volatile.Read(ref _map[block]);
            if (entry < _blocks)
                await _file.WriteAsync(_dataOffset + ((long)entry << VdiHeader.BlockShift) + inBlock, part).ConfigureAwait(false);
            else
                await AllocateAsync(block, inBlock, part).ConfigureAwait(false);
            done += n;
        }
    }

    /// <summary>Writes <paramref name="data"/> into block <paramref name="block"/>, allocating the block if it still needs it.</summary>
    private async ValueTask AllocateAsync(long block, int inBlock, IoVector data)
    {
        await _allocationLock.WaitAsync().ConfigureAwait(false);
        try
        {
            uint entry = _map[block];
            if (entry < _blocks)
            {
                await _file.WriteAsync(_dataOffset + ((long)entry << VdiHeader.BlockShift) + inBlock, data).ConfigureAwait(false);
                return;
            }
            if (entry < Discarded)
                ThrowEntryOutOfRange(block, entry);
            uint index = _nextBlock;
            if (index >= _blocks)
                throw new ImageFormatException(string.Create(CultureInfo.InvariantCulture,
                    $"Corrupt VDI image '{_file.Filename}': all {_blocks} data blocks are in use, none is left for block {block}"), Errno.EIO);

            var buffer = Node.Graph.Buffers.Rent(BlockSize);
            try
            {
                var whole = buffer.Memory[..BlockSize];
                whole.Span.Clear();
                data.CopyTo(whole.Span[inBlock..]);
                await _file.WriteAsync(_dataOffset + ((long)index << VdiHeader.BlockShift), whole).ConfigureAwait(false);

                _nextBlock = index + 1;
                VdiHeader.WriteBlocksAllocated(_headerSector, index + 1);
                var sector = whole[..512];
                _headerSector.CopyTo(sector);
                await _file.WriteAsync(0, sector).ConfigureAwait(false);

                Volatile.Write(ref _map[block], index);
                long first = block / EntriesPerSector * EntriesPerSector;
                for (int i = 0; i < EntriesPerSector; i++)
                    BinaryPrimitives.WriteUInt32LittleEndian(sector.Span[(i * 4)..], _map[first + i]);
                await _file.WriteAsync(_header.BlockMapOffset + first * 4, sector).ConfigureAwait(false);
            }
            finally
            {
                buffer.Return(clear: false);
            }
        }
        finally
        {
            _allocationLock.Release();
        }
    }

    public override ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length, bool wantZero)
    {
        long block = offset >> VdiHeader.BlockShift;
        long inBlock = offset & (BlockSize - 1);
        uint entry = _map[block];
        long bytes = Math.Min(length, BlockSize - inBlock);
        if (entry < _blocks)
        {
            // Runs of blocks laid out one after the other in the file are one extent, as a map shows them.
            long host = _dataOffset + ((long)entry << VdiHeader.BlockShift) + inBlock;
            while (bytes < length && block + 1 < _blocks && _map[block + 1] == entry + 1)
            {
                block++;
                entry++;
                bytes = Math.Min(length, bytes + BlockSize);
            }
            return new(new BlockStatus(BlockStatusFlags.Data | BlockStatusFlags.OffsetValid | BlockStatusFlags.Recurse, bytes, host, _file));
        }
        if (entry < Discarded)
            ThrowEntryOutOfRange(block, entry);
        while (bytes < length && block + 1 < _blocks && _map[block + 1] >= Discarded)
        {
            block++;
            bytes = Math.Min(length, bytes + BlockSize);
        }
        // Unallocated blocks read as zeroes, and say so: QEMU reports them as zero (and so as allocated), not as holes.
        return new(new BlockStatus(BlockStatusFlags.Zero, bytes));
    }

    // ---- check ------------------------------------------------------------------------------------------------

    public override ValueTask<ImageCheck> CheckAsync(CheckRepair repair) => CheckAsync(repair, null);

    /// <remarks>What qemu-img finds, in its words: entries past the map's end, entries two blocks share, and a header
    /// count that differs from the entries. QEMU repairs none of them, and neither do we.</remarks>
    public override ValueTask<ImageCheck> CheckAsync(CheckRepair repair, TextWriter? messages)
    {
        if (repair != CheckRepair.None)
            return ValueTask.FromException<ImageCheck>(new BlockException(Errno.ENOTSUP, "This image format does not support checks"));
        var owner = new bool[_blocks];
        long corruptions = 0;
        uint counted = 0;
        for (uint block = 0; block < _blocks; block++)
        {
            uint entry = _map[block];
            if (entry >= Discarded)
                continue;
            if (entry >= _blocks)
            {
                messages?.WriteLine(string.Create(CultureInfo.InvariantCulture, $"ERROR: block index {block} too large, is {entry}"));
                corruptions++;
                continue;
            }
            counted++;
            if (owner[entry])
            {
                messages?.WriteLine(string.Create(CultureInfo.InvariantCulture, $"ERROR: block index {entry} also used by {entry}"));
                corruptions++;
            }
            owner[entry] = true;
        }
        uint recorded = BinaryPrimitives.ReadUInt32LittleEndian(_headerSector.AsSpan(0x184));
        if (counted != recorded)
        {
            messages?.WriteLine(string.Create(CultureInfo.InvariantCulture, $"ERROR: allocated blocks mismatch, is {counted}, should be {recorded}"));
            corruptions++;
        }
        return new(new ImageCheck { Filename = Filename, Format = "vdi", Corruptions = corruptions == 0 ? null : corruptions });
    }

    public override async ValueTask DisposeAsync()
    {
        _allocationLock.Dispose();
        await base.DisposeAsync().ConfigureAwait(false);
    }

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowEntryOutOfRange(long block, uint entry) =>
        throw new ImageFormatException(string.Create(CultureInfo.InvariantCulture,
            $"Corrupt VDI image '{_file.Filename}': block map entry {block} names data block {entry}, past the {_blocks} blocks of the image"), Errno.EIO);
}
