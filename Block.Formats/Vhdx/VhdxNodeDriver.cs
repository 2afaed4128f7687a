using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Runtime.CompilerServices;
using Block.Drivers;
using Block.Graph;
using Block.Io;
using Block.Qapi;

namespace Block.Formats.Vhdx;

/// <summary>
/// One open VHDX image: its BAT in memory, payload blocks in its file, metadata updates through the log.
/// </summary>
/// <remarks>
/// <para>The read and write of a fully present block look up one BAT entry and pass the request to the file, with no
/// lock and no allocation.</para>
/// <para>Allocation is serialised by one lock and ordered as QEMU orders it: the file grows by a block at the next
/// 1 MiB boundary, the data is written and flushed, then the BAT sector goes through the log. A crash before the log
/// entry is complete leaves a block no entry names (a leak); after it, replay on the next open finishes the update.</para>
/// </remarks>
internal sealed class VhdxNodeDriver : NodeDriver, IBlockReader
{
    private const ulong StateMask = 7, OffsetMask = ~0xfffffUL;
    private const ulong FullyPresent = 6, PartiallyPresent = 7;

    private readonly BlockNode _file;
    private readonly VhdxLayout _layout;
    private readonly VhdxHeaderPair _headers;
    private readonly VhdxLog _log;
    /// <summary>The BAT in whole 4 KiB sectors, as the file holds it.</summary>
    private readonly ulong[] _bat;
    private readonly int _blockShift;
    private readonly long _blockSize;
    private readonly long _chunkRatio;
    private readonly SemaphoreSlim _allocationLock = new(1, 1);
    private readonly Guid _sessionGuid = Guid.NewGuid();
    /// <summary>Set once the headers carry this session's write GUIDs, as the first write must make them.</summary>
    private volatile bool _writeGuidsSet;

    public VhdxNodeDriver(BlockNode node, BlockNode file, VhdxLayout layout, VhdxHeaderPair headers, VhdxLog log, ulong[] bat)
        : base(node)
    {
        _file = file;
        _layout = layout;
        _headers = headers;
        _log = log;
        _bat = bat;
        _blockShift = layout.BlockShift;
        _blockSize = layout.BlockSize;
        _chunkRatio = layout.ChunkRatio;
    }

    public override BlockLimits Limits => new() { RequestAlignment = 512 };

    public override long Length => _layout.VirtualSize;

    public override long? ClusterSize => _blockSize;

    public override bool? DirtyFlag => false;

    // ---- I/O --------------------------------------------------------------------------------------------------

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private long BatIndex(long block) => block + block / _chunkRatio;

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
        ulong entry = Volatile.Read(ref _bat[BatIndex(block)]);
        ulong state = entry & StateMask;
        if (state == FullyPresent)
            return _file.ReadAsync((long)(entry & OffsetMask) + inBlock, buffers);
        if (state == PartiallyPresent)
            ThrowPartiallyPresent(block);
        buffers.Clear();
        return default;
    }

    ValueTask IBlockReader.ReadInBlockAsync(long block, long inBlock, IoVector buffers) => ReadInBlockAsync(block, inBlock, buffers);

    public override ValueTask WriteAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        long inBlock = offset & (_blockSize - 1);
        if (_writeGuidsSet && inBlock + buffers.Length <= _blockSize)
        {
            ulong entry = Volatile.Read(ref _bat[BatIndex(offset >> _blockShift)]);
            if ((entry & StateMask) == FullyPresent)
                return _file.WriteAsync((long)(entry & OffsetMask) + inBlock, buffers);
        }
        return WriteSlowAsync(offset, buffers);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask WriteSlowAsync(long offset, IoVector buffers)
    {
        if (!_writeGuidsSet)
            await SetWriteGuidsAsync().ConfigureAwait(false);
        int done = 0;
        while (done < buffers.Length)
        {
            long at = offset + done;
            long block = at >> _blockShift;
            long inBlock = at & (_blockSize - 1);
            int n = (int)Math.Min(buffers.Length - done, _blockSize - inBlock);
            var part = buffers.Slice(done, n);
            ulong entry = Volatile.Read(ref _bat[BatIndex(block)]);
            if ((entry & StateMask) == FullyPresent)
                await _file.WriteAsync((long)(entry & OffsetMask) + inBlock, part).ConfigureAwait(false);
            else
                await AllocateAsync(block, inBlock, part).ConfigureAwait(false);
            done += n;
        }
    }

    /// <summary>
    /// Before the first write of a session, the headers get this session's FileWriteGuid and a new DataWriteGuid, as
    /// the specification asks and QEMU does.
    /// </summary>
    private async ValueTask SetWriteGuidsAsync()
    {
        await _allocationLock.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_writeGuidsSet)
                return;
            var dataGuid = Guid.NewGuid();
            await _headers.UpdateAsync(h => h with { FileWriteGuid = _sessionGuid, DataWriteGuid = dataGuid }).ConfigureAwait(false);
            _writeGuidsSet = true;
        }
        finally
        {
            _allocationLock.Release();
        }
    }

    /// <summary>Writes <paramref name="data"/> into block <paramref name="block"/>, allocating the block if it still needs it.</summary>
    private async ValueTask AllocateAsync(long block, long inBlock, IoVector data)
    {
        await _allocationLock.WaitAsync().ConfigureAwait(false);
        try
        {
            long index = BatIndex(block);
            ulong entry = _bat[index];
            if ((entry & StateMask) == FullyPresent)
            {
                await _file.WriteAsync((long)(entry & OffsetMask) + inBlock, data).ConfigureAwait(false);
                return;
            }
            if ((entry & StateMask) == PartiallyPresent)
                ThrowPartiallyPresent(block);
            long hostOffset = (_file.Length + VhdxLayout.MiB - 1) & ~(VhdxLayout.MiB - 1);
            await _file.TruncateAsync(hostOffset + _blockSize).ConfigureAwait(false);
            if (!_file.Impl.HasZeroInit)
            {
                if (inBlock > 0)
                    await _file.WriteZeroesAsync(hostOffset, inBlock).ConfigureAwait(false);
                long end = inBlock + data.Length;
                if (end < _blockSize)
                    await _file.WriteZeroesAsync(hostOffset + end, _blockSize - end).ConfigureAwait(false);
            }
            await _file.WriteAsync(hostOffset + inBlock, data).ConfigureAwait(false);
            await _file.FlushAsync().ConfigureAwait(false);
            await UpdateBatAsync(index, (ulong)hostOffset | FullyPresent).ConfigureAwait(false);
        }
        finally
        {
            _allocationLock.Release();
        }
    }

    /// <summary>Sets BAT entry <paramref name="index"/>, writing its 4 KiB sector through the log; call under the allocation lock.</summary>
    private async ValueTask UpdateBatAsync(long index, ulong entry)
    {
        const int PerSector = VhdxLog.SectorSize / 8;
        long first = index / PerSector * PerSector;
        var sector = new byte[VhdxLog.SectorSize];
        for (int i = 0; i < PerSector; i++)
            BinaryPrimitives.WriteUInt64LittleEndian(sector.AsSpan(i * 8), first + i == index ? entry : _bat[first + i]);
        await _log.WriteSectorAsync(_layout.BatOffset + first * 8, sector).ConfigureAwait(false);
        Volatile.Write(ref _bat[index], entry);
    }

    /// <remarks>Blocks that are not allocated already read as zeroes and stay so; allocated ones are zeroed in the file.</remarks>
    public override async ValueTask WriteZeroesAsync(long offset, long length, RequestFlags flags)
    {
        if (!_writeGuidsSet)
            await SetWriteGuidsAsync().ConfigureAwait(false);
        long done = 0;
        while (done < length)
        {
            long at = offset + done;
            long inBlock = at & (_blockSize - 1);
            long n = Math.Min(length - done, _blockSize - inBlock);
            ulong entry = Volatile.Read(ref _bat[BatIndex(at >> _blockShift)]);
            if ((entry & StateMask) == FullyPresent)
                await _file.WriteZeroesAsync((long)(entry & OffsetMask) + inBlock, n).ConfigureAwait(false);
            done += n;
        }
    }

    public override ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length, bool wantZero)
    {
        long block = offset >> _blockShift;
        long inBlock = offset & (_blockSize - 1);
        ulong entry = _bat[BatIndex(block)];
        long bytes = Math.Min(length, _blockSize - inBlock);
        long blocks = _layout.PayloadBlocks;
        if ((entry & StateMask) == FullyPresent)
        {
            // Blocks laid out one after the other in the file are one extent, as a map shows them.
            long host = (long)(entry & OffsetMask) + inBlock;
            while (bytes < length && block + 1 < blocks && _bat[BatIndex(block + 1)] == entry + (ulong)_blockSize)
            {
                block++;
                entry += (ulong)_blockSize;
                bytes = Math.Min(length, bytes + _blockSize);
            }
            return new(new BlockStatus(BlockStatusFlags.Data | BlockStatusFlags.OffsetValid | BlockStatusFlags.Recurse, bytes, host, _file));
        }
        if ((entry & StateMask) == PartiallyPresent)
            ThrowPartiallyPresent(block);
        while (bytes < length && block + 1 < blocks && (_bat[BatIndex(block + 1)] & StateMask) is not (FullyPresent or PartiallyPresent))
        {
            block++;
            bytes = Math.Min(length, bytes + _blockSize);
        }
        // QEMU 7.2 has no block status for vhdx and maps everything as data; the holes are worth showing.
        return new(new BlockStatus(BlockStatusFlags.Zero, bytes));
    }

    // ---- check ------------------------------------------------------------------------------------------------

    public override ValueTask<ImageCheck> CheckAsync(CheckRepair repair) => CheckAsync(repair, null);

    /// <remarks>
    /// Payload blocks that end past the end of the file, and blocks that overlap each other or the metadata; neither
    /// is repaired, as in QEMU. A log replayed at open (only a read/write open replays) is reported as a fixed corruption.
    /// </remarks>
    public override ValueTask<ImageCheck> CheckAsync(CheckRepair repair, TextWriter? messages)
    {
        long fileLength = _file.Length;
        long corruptions = 0;
        var owners = new Dictionary<long, long>();
        for (long block = 0; block < _layout.PayloadBlocks; block++)
        {
            ulong entry = _bat[BatIndex(block)];
            if ((entry & StateMask) != FullyPresent)
                continue;
            long start = (long)(entry & OffsetMask);
            // The last block may end with the disk, before a whole block (QEMU's fixed images do).
            long end = start + Math.Min(_blockSize, _layout.VirtualSize - block * _blockSize) - 1;
            if (start >= fileLength || end >= fileLength)
            {
                messages?.WriteLine(string.Create(CultureInfo.InvariantCulture,
                    $"blk: VHDX BAT entry {BatIndex(block)} {(start >= fileLength ? "start" : "end")} offset {(start >= fileLength ? start : end)} points after end of file ({fileLength}). Image has probably been truncated."));
                corruptions++;
                continue;
            }
            for (long mib = start >> 20; mib < (start + _blockSize) >> 20; mib++)
            {
                if (owners.TryGetValue(mib, out long other))
                {
                    messages?.WriteLine(string.Create(CultureInfo.InvariantCulture,
                        $"blk: VHDX BAT entry {BatIndex(block)} host offset overlaps with BAT entry {BatIndex(other)}"));
                    corruptions++;
                    break;
                }
                owners[mib] = block;
            }
        }
        return new(new ImageCheck
        {
            Filename = Filename,
            Format = "vhdx",
            Corruptions = corruptions == 0 ? null : corruptions,
            CorruptionsFixed = ReplayedAtOpen ? 1 : null,
        });
    }

    /// <summary>True if opening the image replayed its log.</summary>
    public bool ReplayedAtOpen { get; init; }

    public override async ValueTask DisposeAsync()
    {
        _allocationLock.Dispose();
        await base.DisposeAsync().ConfigureAwait(false);
    }

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowPartiallyPresent(long block) =>
        throw new ImageFormatException(string.Create(CultureInfo.InvariantCulture,
            $"VHDX image '{_file.Filename}': payload block {block} is partially present, which only differencing images may have"), Errno.EIO);
}
