using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Numerics;
using System.Runtime.CompilerServices;
using Block.Drivers;
using Block.Graph;
using Block.Io;

namespace Block.Formats.Vpc;

/// <summary>
/// One open dynamic VHD: its BAT in memory, and blocks (a sector bitmap, then the data) appended to the file as they
/// are first written, the footer moving to the new end each time.
/// </summary>
/// <remarks>
/// <para>Reads and writes of an allocated block look up one BAT entry and pass the request to the file, with no lock
/// and no allocation. Like QEMU, reads ignore the sector bitmap: an allocated block is wholly this image's.</para>
/// <para>Allocation is serialised by one lock and ordered as QEMU orders it: the footer at the new end, the all-ones
/// bitmap, the BAT entry, then the data; a crash leaves at worst a block of zeroes no entry names, or an entry for a
/// block of zeroes (the write in flight lost). Entries are published to readers only after the data is in the file.</para>
/// </remarks>
internal sealed class VpcNodeDriver : NodeDriver, IBlockReader
{
    /// <summary>The BAT entry of a block that is not in the file (reads as zeroes).</summary>
    public const uint Unallocated = 0xffff_ffff;

    private readonly BlockNode _file;
    private readonly byte[] _footer;
    private readonly uint[] _bat;
    private readonly long _tableOffset;
    private readonly long _length;
    private readonly int _blockShift;
    private readonly long _blockSize;
    private readonly int _bitmapBytes;
    private readonly SemaphoreSlim _allocationLock = new(1, 1);
    /// <summary>Where the next block goes (the footer is there); only changed under <see cref="_allocationLock"/>.</summary>
    private long _freeOffset;

    public VpcNodeDriver(BlockNode node, BlockNode file, byte[] footer, VpcDynamicHeader header, uint[] bat, long length, long freeOffset)
        : base(node)
    {
        _file = file;
        _footer = footer;
        _bat = bat;
        _tableOffset = (long)header.TableOffset;
        _length = length;
        _blockSize = header.BlockSize;
        _blockShift = BitOperations.Log2(header.BlockSize);
        _bitmapBytes = header.BitmapBytes;
        _freeOffset = freeOffset;
    }

    public override BlockLimits Limits => new() { RequestAlignment = 512 };

    public override long Length => _length;

    public override long? ClusterSize => _blockSize;

    public override bool? DirtyFlag => false;

    /// <summary>The node's name when its options make it a <c>json:</c> one (<c>force_size_calc</c>); null for the file's.</summary>
    public string? OptionsFilename { get; init; }

    public override string Filename => OptionsFilename ?? base.Filename;

    // ---- I/O --------------------------------------------------------------------------------------------------

    public override ValueTask ReadAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        long inBlock = offset & (_blockSize - 1);
        if (inBlock + buffers.Length <= _blockSize)
            return ReadInBlockAsync(offset >> _blockShift, inBlock, buffers);
        return BlockSpans.ReadAsync(this, _blockShift, offset, buffers);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private ValueTask ReadInBlockAsync(long block, long inBlock, IoVector buffers)
    {
        uint entry = Volatile.Read(ref _bat[block]);
        if (entry != Unallocated)
            return _file.ReadAsync(DataOffset(entry) + inBlock, buffers);
        buffers.Clear();
        return default;
    }

    ValueTask IBlockReader.ReadInBlockAsync(long block, long inBlock, IoVector buffers) => ReadInBlockAsync(block, inBlock, buffers);

    public override ValueTask WriteAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        long inBlock = offset & (_blockSize - 1);
        if (inBlock + buffers.Length <= _blockSize)
        {
            uint entry = Volatile.Read(ref _bat[offset >> _blockShift]);
            if (entry != Unallocated)
                return _file.WriteAsync(DataOffset(entry) + inBlock, buffers);
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
            long block = at >> _blockShift;
            long inBlock = at & (_blockSize - 1);
            int n = (int)Math.Min(buffers.Length - done, _blockSize - inBlock);
            var part = buffers.Slice(done, n);
            uint entry = Volatile.Read(ref _bat[block]);
            if (entry != Unallocated)
                await _file.WriteAsync(DataOffset(entry) + inBlock, part).ConfigureAwait(false);
            else
                await AllocateAsync(block, inBlock, part).ConfigureAwait(false);
            done += n;
        }
    }

    /// <summary>Writes <paramref name="data"/> into block <paramref name="block"/>, allocating the block if it still needs it.</summary>
    private async ValueTask AllocateAsync(long block, long inBlock, IoVector data)
    {
        await _allocationLock.WaitAsync().ConfigureAwait(false);
        try
        {
            uint entry = _bat[block];
            if (entry != Unallocated)
            {
                await _file.WriteAsync(DataOffset(entry) + inBlock, data).ConfigureAwait(false);
                return;
            }
            long bitmapAt = _freeOffset;
            long newEnd = bitmapAt + _bitmapBytes + _blockSize;
            if (bitmapAt / 512 >= Unallocated)
                ThrowFull(block);

            // The footer at the new end first (the block between is a hole of the file, which reads as zeroes), then
            // the bitmap over the old footer, then the BAT entry, and the data last, as QEMU orders them: a crash leaves
            // at worst a leaked block of zeroes, or an entry for a block of zeroes. Data written before the entry would
            // lie past the end the BAT knows, and the next allocation there (ours or QEMU's, neither zeroes the block)
            // would show it in another block.
            // Past the end the BAT knows there may be bytes all the same (a crash of another writer, storage that does
            // not read as zeroes): the block is zeroed first then.
            bool staleTail = _file.Length > bitmapAt + VpcFooter.Size || !_file.Impl.HasZeroInit;
            var buffer = Node.Graph.Buffers.Rent(Math.Max(_bitmapBytes, VpcFooter.Size));
            try
            {
                if (staleTail)
                    await _file.WriteZeroesAsync(bitmapAt + _bitmapBytes, _blockSize).ConfigureAwait(false);
                var footer = buffer.Memory[..VpcFooter.Size];
                _footer.CopyTo(footer);
                await _file.WriteAsync(newEnd, footer).ConfigureAwait(false);
                var bitmap = buffer.Memory[.._bitmapBytes];
                bitmap.Span.Fill(0xff);
                await _file.WriteAsync(bitmapAt, bitmap).ConfigureAwait(false);
                _freeOffset = newEnd;

                uint newEntry = (uint)(bitmapAt / 512);
                var entryBytes = buffer.Memory[..4];
                BinaryPrimitives.WriteUInt32BigEndian(entryBytes.Span, newEntry);
                await _file.WriteAsync(_tableOffset + block * 4, entryBytes).ConfigureAwait(false);
                await _file.WriteAsync(bitmapAt + _bitmapBytes + inBlock, data).ConfigureAwait(false);
                // Readers see the block only once its data is in the file.
                Volatile.Write(ref _bat[block], newEntry);
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

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private long DataOffset(uint entry) => (long)entry * 512 + _bitmapBytes;

    public override ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length, bool wantZero)
    {
        long block = offset >> _blockShift;
        long inBlock = offset & (_blockSize - 1);
        uint entry = _bat[block];
        long bytes = Math.Min(length, _blockSize - inBlock);
        if (entry != Unallocated)
        {
            // Blocks laid out one right after the other in the file are one extent. With the bitmap between blocks that
            // happens only for images made by other tools; QEMU merges them the same way.
            long host = DataOffset(entry) + inBlock;
            while (bytes < length && block + 1 < _bat.Length && _bat[block + 1] != Unallocated
                && DataOffset(_bat[block + 1]) == DataOffset(_bat[block]) + _blockSize)
            {
                block++;
                bytes = Math.Min(length, bytes + _blockSize);
            }
            return new(new BlockStatus(BlockStatusFlags.Data | BlockStatusFlags.OffsetValid, bytes, host, _file));
        }
        while (bytes < length && block + 1 < _bat.Length && _bat[block + 1] == Unallocated)
        {
            block++;
            bytes = Math.Min(length, bytes + _blockSize);
        }
        // Unallocated blocks read as zeroes, and QEMU reports them so (and so as allocated), not as holes.
        return new(new BlockStatus(BlockStatusFlags.Zero, bytes));
    }

    public override async ValueTask DisposeAsync()
    {
        _allocationLock.Dispose();
        await base.DisposeAsync().ConfigureAwait(false);
    }

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowFull(long block) =>
        throw new ImageFormatException(string.Create(CultureInfo.InvariantCulture,
            $"VPC image '{_file.Filename}' is full: block {block} would start past the 2 TiB a BAT entry can address"), Errno.EFBIG);
}
