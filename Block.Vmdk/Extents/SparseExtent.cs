using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Block.Drivers.Blkdebug;
using Block.Graph;
using Block.Io;
using Block.Vmdk.Format;

namespace Block.Vmdk.Extents;

/// <summary>
/// A sparse extent: a grain directory of grain tables whose entries give each grain's sector in the file (0 =
/// unallocated, showing the backing image or zeroes; 1 = a zeroed grain where the header allows it). Plain extents
/// ("KDMV", version 1 and 2), streamOptimized ones (compressed grains with markers) and ESX "COWD" ones (read-only)
/// share this code.
/// </summary>
/// <remarks>
/// <para>Reads of allocated grains touch no lock: the grain table comes from <see cref="GrainTableCache"/>, and a
/// request inside one grain becomes one read of the file. Contiguous grains are read (and written) with one request.</para>
/// <para>Allocation is serialised by one metadata lock per extent, held from the choice of the new grain's place
/// to the update of its table entries, as QEMU serialises its writes. Data reaches the file before the entries that
/// point to it, and entries are written to both the primary and the redundant grain table, so the two directories
/// stay in step. New grains are appended at the end of the file.</para>
/// </remarks>
internal sealed partial class SparseExtent : VmdkExtent
{
    private const int MaxGrainsPerAllocation = 1024;

    private readonly SparseGeometry _geometry;
    private readonly IVmdkParent _parent;
    private readonly AlignedBufferPool _buffers;
    private readonly uint[] _directory;
    private readonly uint[]? _redundantDirectory;
    private readonly GrainTableCache _cache;
    private readonly SemaphoreSlim _metadataLock = new(1, 1);
    private readonly long _grainBytes;
    private readonly int _grainShift;
    private readonly int _tableEntries;
    private readonly int _tableShift;
    private readonly object _grainCacheLock = new();
    private long _fileLength;
    private long _nextSector;
    private bool _wroteStream;
    private AlignedBuffer? _cachedGrain;
    private long _cachedGrainSector = -1;
    private int _cachedGrainLength;

    private SparseExtent(BlockNode file, long diskOffset, string typeName, SparseGeometry geometry, uint[] directory,
        uint[]? redundantDirectory, long fileLength, IVmdkParent parent, AlignedBufferPool buffers)
        : base(file, diskOffset, geometry.CapacitySectors * 512, typeName)
    {
        _geometry = geometry;
        _parent = parent;
        _buffers = buffers;
        _directory = directory;
        _redundantDirectory = redundantDirectory;
        _grainBytes = geometry.GrainBytes;
        _grainShift = long.IsPow2(_grainBytes) ? System.Numerics.BitOperations.Log2((ulong)_grainBytes) : -1;
        _tableEntries = geometry.GrainTableEntries;
        _tableShift = int.IsPow2(_tableEntries) ? System.Numerics.BitOperations.Log2((uint)_tableEntries) : -1;
        _cache = new GrainTableCache(directory.Length, geometry.TableBytes);
        _fileLength = fileLength;
        _nextSector = Math.Max(geometry.OverheadSectors, (fileLength + 511) / 512);
    }

    public override long? ClusterSize => _grainBytes;

    public override bool IsCompressed => _geometry.Compressed;

    public override string? ReadOnlyReason => _geometry.ReadOnlyReason;

    /// <summary>The extent's geometry.</summary>
    public SparseGeometry Geometry => _geometry;

    // ---- reads ------------------------------------------------------------------------------------------------

    public override ValueTask ReadAsync(long offset, IoVector buffers)
    {
        // The common case: inside one allocated, uncompressed grain whose table is in memory — one read of the file.
        long grain = GrainIndex(offset);
        long inGrain = offset - grain * _grainBytes;
        if (inGrain + buffers.Length <= _grainBytes && !_geometry.Compressed && !BlockNode.DebugEventsEnabled
            && TryGetCachedEntry(grain, out uint entry) && IsData(entry))
            return File.ReadAsync(((long)entry << 9) + inGrain, buffers);
        return ReadSlowAsync(offset, buffers);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ReadSlowAsync(long offset, IoVector buffers)
    {
        int done = 0;
        while (done < buffers.Length)
        {
            long pos = offset + done;
            long grain = GrainIndex(pos);
            long inGrain = pos - grain * _grainBytes;
            int n = (int)Math.Min(buffers.Length - done, _grainBytes - inGrain);
            uint entry = await GetEntryAsync(grain).ConfigureAwait(false);
            if (entry == 0)
            {
                n = ExtendRun(grain, GrainKind.Unallocated, n, buffers.Length - done);
                await _parent.ReadBelowAsync(DiskOffset + pos, buffers.Slice(done, n)).ConfigureAwait(false);
            }
            else if (IsZeroGrain(entry))
            {
                n = ExtendRun(grain, GrainKind.Zero, n, buffers.Length - done);
                buffers.Slice(done, n).Clear();
            }
            else if (_geometry.Compressed)
            {
                await ReadCompressedAsync(entry, (int)inGrain, buffers.Slice(done, n)).ConfigureAwait(false);
            }
            else
            {
                n = ExtendContiguous(grain, entry, n, buffers.Length - done);
                await File.DebugEventAsync(BlkdebugEvent.ReadAio).ConfigureAwait(false);
                await File.ReadAsync(((long)entry << 9) + inGrain, buffers.Slice(done, n)).ConfigureAwait(false);
            }
            done += n;
        }
    }

    /// <summary>Grows a run of grains of one kind (unallocated, zeroed) as far as cached tables tell without I/O.</summary>
    private int ExtendRun(long grain, GrainKind kind, int n, int remaining)
    {
        while (n < remaining)
        {
            long next = grain + 1;
            if (!TryGetCachedEntry(next, out uint e) || Classify(e) != kind)
                break;
            grain = next;
            n = (int)Math.Min(remaining, (long)n + _grainBytes);
        }
        return n;
    }

    /// <summary>Grows a run of allocated grains while they are contiguous in the file, as far as cached tables tell.</summary>
    private int ExtendContiguous(long grain, uint entry, int n, int remaining)
    {
        while (n < remaining)
        {
            if (!TryGetCachedEntry(grain + 1, out uint next) || next != entry + (uint)_geometry.GranularitySectors || !IsData(next))
                break;
            grain++;
            entry = next;
            n = (int)Math.Min(remaining, (long)n + _grainBytes);
        }
        return n;
    }

    private async ValueTask ReadCompressedAsync(uint entry, int inGrain, IoVector destination)
    {
        long sector = entry;
        lock (_grainCacheLock)
        {
            if (_cachedGrainSector == sector && _cachedGrain != null)
            {
                CopyGrain(_cachedGrain.Span[.._cachedGrainLength], inGrain, destination);
                return;
            }
        }
        var grain = _buffers.Rent((int)_grainBytes);
        bool kept = false;
        try
        {
            int length = await InflateGrainAsync(sector, grain.Memory[..(int)_grainBytes]).ConfigureAwait(false);
            CopyGrain(grain.Span[..length], inGrain, destination);
            lock (_grainCacheLock)
            {
                var old = _cachedGrain;
                _cachedGrain = grain;
                _cachedGrainSector = sector;
                _cachedGrainLength = length;
                kept = true;
                old?.Return(clear: false);
            }
        }
        finally
        {
            if (!kept)
                grain.Return(clear: false);
        }
    }

    private static void CopyGrain(ReadOnlySpan<byte> grain, int inGrain, IoVector destination)
    {
        // The last grain of a disk may inflate to less than a whole grain: the rest reads as zeroes.
        int available = Math.Max(0, Math.Min(destination.Length, grain.Length - inGrain));
        if (available > 0)
            destination.Slice(0, available).CopyFrom(grain.Slice(inGrain, available));
        if (available < destination.Length)
            destination.Slice(available).Clear();
    }

    /// <summary>Reads the grain marker at <paramref name="sector"/> and inflates its data into <paramref name="grain"/>.</summary>
    private async ValueTask<int> InflateGrainAsync(long sector, Memory<byte> grain)
    {
        long host = sector << 9;
        int maxCompressed = GrainCodec.MaxCompressedLength((int)_grainBytes);
        if (host + StreamMarker.GrainHeaderSize > _fileLength)
            throw new ImageFormatException($"VMDK compressed grain at offset {host} is beyond the end of the file ({_fileLength} bytes)", Errno.EIO);
        byte[] raw = ArrayPool<byte>.Shared.Rent(StreamMarker.GrainHeaderSize + maxCompressed);
        try
        {
            int first = (int)Math.Min(raw.Length, Math.Min(_fileLength - host, 4096));
            await File.ReadAsync(host, raw.AsMemory(0, first)).ConfigureAwait(false);
            var (_, size) = StreamMarker.ReadGrain(raw);
            if (size == 0 || size > maxCompressed || host + StreamMarker.GrainHeaderSize + size > _fileLength)
                throw new ImageFormatException($"VMDK grain marker at offset {host} has an invalid compressed size {size} (at most {maxCompressed}, file length {_fileLength})", Errno.EIO);
            int total = StreamMarker.GrainHeaderSize + (int)size;
            if (total > first)
                await File.ReadAsync(host + first, raw.AsMemory(first, total - first)).ConfigureAwait(false);
            return GrainCodec.Decompress(raw, StreamMarker.GrainHeaderSize, (int)size, grain.Span, host);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(raw);
        }
    }

    // ---- writes -----------------------------------------------------------------------------------------------

    public override async ValueTask WriteAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        await _parent.BeforeFirstWriteAsync().ConfigureAwait(false);
        if (_geometry.Compressed)
        {
            await WriteCompressedAsync(offset, buffers).ConfigureAwait(false);
            return;
        }
        int done = 0;
        while (done < buffers.Length)
        {
            long pos = offset + done;
            long grain = GrainIndex(pos);
            long inGrain = pos - grain * _grainBytes;
            int n = (int)Math.Min(buffers.Length - done, _grainBytes - inGrain);
            uint entry = await GetWriteEntryAsync(grain).ConfigureAwait(false);
            if (IsData(entry))
            {
                CheckWritable(entry, grain);
                n = ExtendContiguous(grain, entry, n, buffers.Length - done);
                await File.DebugEventAsync(BlkdebugEvent.WriteAio).ConfigureAwait(false);
                await File.WriteAsync(((long)entry << 9) + inGrain, buffers.Slice(done, n)).ConfigureAwait(false);
            }
            else
            {
                n = await AllocateAndWriteAsync(pos, buffers.Slice(done)).ConfigureAwait(false);
            }
            done += n;
        }
    }

    /// <summary>
    /// Writes into grains that have no place in the file yet, starting at <paramref name="offset"/>: a partial grain is
    /// completed from what lies below (the backing image, or zeroes); whole grains are written straight from the
    /// caller's buffers, as many contiguous ones as the request covers. Returns how many bytes it wrote (0 if
    /// another writer allocated the grain meanwhile).
    /// </summary>
    private async ValueTask<int> AllocateAndWriteAsync(long offset, IoVector rest)
    {
        await _metadataLock.WaitAsync().ConfigureAwait(false);
        try
        {
            long grain = GrainIndex(offset);
            long grainStart = grain * _grainBytes;
            long inGrain = offset - grainStart;
            uint entry = await GetEntryLockedAsync(grain).ConfigureAwait(false);
            if (IsData(entry))
                return 0;
            RequireTable(grain);
            long grainEnd = Math.Min(grainStart + _grainBytes, Length);
            if (inGrain != 0 || rest.Length < grainEnd - grainStart)
                return await CopyOnWriteGrainAsync(grain, entry, (int)inGrain, rest).ConfigureAwait(false);

            // A run of whole grains without a place: one data write, then the table entries.
            int count = 1;
            long covered = grainEnd - grainStart;
            while (count < MaxGrainsPerAllocation && covered < rest.Length)
            {
                long next = grain + count;
                long nextStart = next * _grainBytes;
                long nextEnd = Math.Min(nextStart + _grainBytes, Length);
                if (rest.Length - covered < nextEnd - nextStart || _directory[next / _tableEntries] == 0)
                    break;
                if (IsData(await GetEntryLockedAsync(next).ConfigureAwait(false)))
                    break;
                covered += nextEnd - nextStart;
                count++;
            }
            long sector = AllocateSectors(count * _geometry.GranularitySectors);
            int bytes = (int)covered;
            await File.DebugEventAsync(BlkdebugEvent.WriteAio).ConfigureAwait(false);
            await File.WriteAsync(sector << 9, rest.Slice(0, bytes)).ConfigureAwait(false);
            NoteFileEnd((sector << 9) + bytes);
            await SetEntriesAsync(grain, count, (uint)sector, (uint)_geometry.GranularitySectors).ConfigureAwait(false);
            return bytes;
        }
        finally
        {
            _metadataLock.Release();
        }
    }

    private async ValueTask<int> CopyOnWriteGrainAsync(long grain, uint entry, int inGrain, IoVector rest)
    {
        long grainStart = grain * _grainBytes;
        int grainLength = (int)Math.Min(_grainBytes, Length - grainStart);
        int n = Math.Min(rest.Length, grainLength - inGrain);
        var buffer = _buffers.Rent((int)_grainBytes);
        try
        {
            var memory = buffer.Memory[..(int)_grainBytes];
            if (IsZeroGrain(entry) || !_parent.HasBacking)
                memory.Span.Clear();
            else
            {
                await _parent.ReadBelowAsync(DiskOffset + grainStart, new IoVector(memory[..grainLength])).ConfigureAwait(false);
                memory.Span[grainLength..].Clear();
            }
            rest.Slice(0, n).CopyTo(memory.Span[inGrain..]);
            long sector = AllocateSectors(_geometry.GranularitySectors);
            if (BlockNode.DebugEventsEnabled)
                await WriteGrainReportedAsync(sector, memory, inGrain, n).ConfigureAwait(false);
            else
                await File.WriteAsync(sector << 9, memory).ConfigureAwait(false);
            NoteFileEnd((sector << 9) + memory.Length);
            await SetEntriesAsync(grain, 1, (uint)sector, 0).ConfigureAwait(false);
            return n;
        }
        finally
        {
            buffer.Return(clear: false);
        }
    }

    /// <summary>
    /// The new grain's write as QEMU makes it when a blkdebug node may be watching: the grain's old content first
    /// (<c>cow_write</c>; a failure there is EINVAL, as QEMU reports a failed allocation), then the new data
    /// (<c>write_aio</c>). Otherwise one write does both.
    /// </summary>
    private async ValueTask WriteGrainReportedAsync(long sector, Memory<byte> grain, int inGrain, int dataBytes)
    {
        await File.DebugEventAsync(BlkdebugEvent.CowWrite).ConfigureAwait(false);
        try
        {
            await File.WriteAsync(sector << 9, grain).ConfigureAwait(false);
        }
        catch (BlockException e)
        {
            throw new BlockException(Errno.EINVAL, "VMDK: copy-on-write of a new grain failed: " + e.Message);
        }
        await File.DebugEventAsync(BlkdebugEvent.WriteAio).ConfigureAwait(false);
        await File.WriteAsync((sector << 9) + inGrain, grain.Slice(inGrain, dataBytes)).ConfigureAwait(false);
    }

    public override async ValueTask WriteZeroesAsync(long offset, long length)
    {
        if (!_geometry.ZeroedGrains)
            throw new BlockException(Errno.ENOTSUP, "write-zeroes needs zeroed-grain entries (zeroed_grain=on)");
        long first = GrainIndex(offset);
        long end = offset + length;
        if (offset != first * _grainBytes || (end % _grainBytes != 0 && end != Length))
            throw new BlockException(Errno.ENOTSUP, "write-zeroes of part of a grain");
        await _parent.BeforeFirstWriteAsync().ConfigureAwait(false);
        long count = (length + _grainBytes - 1) / _grainBytes;
        await _metadataLock.WaitAsync().ConfigureAwait(false);
        try
        {
            for (long g = first; g < first + count;)
            {
                RequireTable(g);
                long tableEnd = (g / _tableEntries + 1) * _tableEntries;
                int run = (int)(Math.Min(first + count, tableEnd) - g);
                await SetEntriesAsync(g, run, 1, 0).ConfigureAwait(false);
                g += run;
            }
        }
        finally
        {
            _metadataLock.Release();
        }
    }

    private async ValueTask WriteCompressedAsync(long offset, IoVector buffers)
    {
        long grain = GrainIndex(offset);
        if (offset != grain * _grainBytes)
            throw new BlockException(Errno.EINVAL, $"streamOptimized writes must start at a grain boundary ({_grainBytes} bytes); offset {DiskOffset + offset} does not");
        int count = (int)((buffers.Length + _grainBytes - 1) / _grainBytes);
        long end = offset + buffers.Length;
        if (end % _grainBytes != 0 && end != Length)
            throw new BlockException(Errno.EINVAL, $"streamOptimized writes must cover whole grains ({_grainBytes} bytes); the write ending at {DiskOffset + end} does not");

        await _metadataLock.WaitAsync().ConfigureAwait(false);
        var compressed = new byte[count][];
        var sizes = new int[count];
        try
        {
            for (int i = 0; i < count; i++)
            {
                RequireTable(grain + i);
                if (await GetEntryLockedAsync(grain + i).ConfigureAwait(false) != 0)
                    throw new BlockException(Errno.EIO, "Could not write to allocated cluster for streamOptimized");
            }
            CompressGrains(grain, buffers, compressed, sizes);
            var segments = new Memory<byte>[count];
            var entries = new uint[count];
            long sector = _nextSector;
            long totalSectors = 0;
            for (int i = 0; i < count; i++)
            {
                segments[i] = compressed[i].AsMemory(0, sizes[i]);
                entries[i] = checked((uint)(sector + totalSectors));
                totalSectors += sizes[i] / 512;
            }
            sector = AllocateSectors(totalSectors);
            await File.WriteAsync(sector << 9, new IoVector(segments)).ConfigureAwait(false);
            NoteFileEnd((sector + totalSectors) << 9);
            _wroteStream = true;
            for (int i = 0; i < count; i++)
                await SetEntriesAsync(grain + i, 1, entries[i], 0).ConfigureAwait(false);
        }
        finally
        {
            foreach (var c in compressed)
            {
                if (c != null)
                    ArrayPool<byte>.Shared.Return(c);
            }
            _metadataLock.Release();
        }
    }

    /// <summary>
    /// Compresses each grain of a write into a marker (sector, size) plus zlib data padded to a sector, on every core:
    /// deflate is the cost of streamOptimized output, and grains are independent. The caller writes them in order.
    /// </summary>
    private void CompressGrains(long firstGrain, IoVector buffers, byte[][] output, int[] sizes)
    {
        int maxCompressed = GrainCodec.MaxCompressedLength((int)_grainBytes);
        int bufferSize = (StreamMarker.GrainHeaderSize + maxCompressed + 511) & ~511;
        void CompressOne(int i)
        {
            int start = (int)(i * _grainBytes);
            int length = (int)Math.Min(_grainBytes, buffers.Length - start);
            var slice = buffers.Slice(start, length);
            byte[]? gathered = null;
            ReadOnlySpan<byte> source;
            if (slice.IsSingleSegment)
            {
                source = slice.FirstSegment.Span;
            }
            else
            {
                gathered = ArrayPool<byte>.Shared.Rent(length);
                slice.CopyTo(gathered);
                source = gathered.AsSpan(0, length);
            }
            byte[] target = ArrayPool<byte>.Shared.Rent(bufferSize);
            output[i] = target;
            int size = GrainCodec.Compress(source, target, StreamMarker.GrainHeaderSize);
            if (gathered != null)
                ArrayPool<byte>.Shared.Return(gathered);
            StreamMarker.WriteGrain(target, (ulong)((firstGrain + i) * _geometry.GranularitySectors), (uint)size);
            int total = StreamMarker.GrainHeaderSize + size;
            int padded = (total + 511) & ~511;
            target.AsSpan(total, padded - total).Clear();
            sizes[i] = padded;
        }
        if (output.Length == 1 || Environment.ProcessorCount == 1)
        {
            for (int i = 0; i < output.Length; i++)
                CompressOne(i);
        }
        else
        {
            Parallel.For(0, output.Length, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, CompressOne);
        }
    }

    public override async ValueTask CloseAsync()
    {
        if (_wroteStream)
        {
            // An end-of-stream marker after the last grain, so readers that walk the markers stop there.
            var eos = _buffers.Rent(512);
            try
            {
                eos.Span[..512].Clear();
                await File.WriteAsync(_nextSector << 9, eos.Memory[..512]).ConfigureAwait(false);
            }
            finally
            {
                eos.Return(clear: false);
            }
        }
        lock (_grainCacheLock)
        {
            _cachedGrain?.Return(clear: false);
            _cachedGrain = null;
            _cachedGrainSector = -1;
        }
    }

    // ---- status and check -------------------------------------------------------------------------------------

    public override async ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length)
    {
        long grain = GrainIndex(offset);
        long inGrain = offset - grain * _grainBytes;
        uint entry = await GetEntryAsync(grain).ConfigureAwait(false);
        var kind = Classify(entry);
        long bytes = Math.Min(length, _grainBytes - inGrain);
        long lastGrain = GrainIndex(offset + length - 1);
        uint expected = entry;
        for (long g = grain + 1; g <= lastGrain; g++)
        {
            uint next = await GetEntryAsync(g).ConfigureAwait(false);
            if (Classify(next) != kind)
                break;
            if (kind == GrainKind.Data)
            {
                expected += (uint)_geometry.GranularitySectors;
                if (next != expected)
                    break;
            }
            bytes = Math.Min(length, bytes + _grainBytes);
        }
        return kind switch
        {
            GrainKind.Unallocated => new BlockStatus(BlockStatusFlags.None, bytes),
            GrainKind.Zero => new BlockStatus(BlockStatusFlags.Zero, bytes),
            GrainKind.Compressed => new BlockStatus(BlockStatusFlags.Data, bytes),
            _ => new BlockStatus(BlockStatusFlags.Data | BlockStatusFlags.OffsetValid, bytes, ((long)entry << 9) + inGrain, File),
        };
    }

    public override async ValueTask CheckAsync()
    {
        long grains = (Length + _grainBytes - 1) / _grainBytes;
        for (long g = 0; g < grains; g++)
        {
            if (_directory[g / _tableEntries] == 0)
            {
                g = (g / _tableEntries + 1) * _tableEntries - 1;
                continue;
            }
            uint entry = await GetEntryAsync(g).ConfigureAwait(false);
            if (IsData(entry) && ((long)entry << 9) >= _fileLength)
                throw new BlockException(Errno.EINVAL, $"ERROR: cluster offset for sector {(DiskOffset + g * _grainBytes) / 512} points after EOF");
        }
    }

    private enum GrainKind
    {
        Unallocated,
        Zero,
        Data,
        Compressed,
    }

    private GrainKind Classify(uint entry) =>
        entry == 0 ? GrainKind.Unallocated : IsZeroGrain(entry) ? GrainKind.Zero : _geometry.Compressed ? GrainKind.Compressed : GrainKind.Data;

    // ---- grain tables -----------------------------------------------------------------------------------------

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private long GrainIndex(long offset) => _grainShift >= 0 ? offset >> _grainShift : offset / _grainBytes;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool IsZeroGrain(uint entry) => entry == 1 && _geometry.ZeroedGrains;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool IsData(uint entry) => entry > 1 || (entry == 1 && !_geometry.ZeroedGrains);

    /// <summary>The entry of <paramref name="grain"/> if its table is in memory (or absent from the directory).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool TryGetCachedEntry(long grain, out uint entry)
    {
        long table;
        int index;
        if (_tableShift >= 0)
        {
            table = grain >> _tableShift;
            index = (int)(grain & (_tableEntries - 1));
        }
        else
        {
            table = grain / _tableEntries;
            index = (int)(grain - table * _tableEntries);
        }
        if ((ulong)table >= (ulong)_directory.Length)
        {
            entry = 0;
            return false;
        }
        if (_directory[table] == 0)
        {
            entry = 0;
            return true;
        }
        var entries = _cache.TryGet(table);
        if (entries is null)
        {
            entry = 0;
            return false;
        }
        entry = entries[index];
        return true;
    }

    private ValueTask<uint> GetEntryAsync(long grain)
    {
        if (TryGetCachedEntry(grain, out uint entry))
            return new ValueTask<uint>(entry);
        return LoadEntryAsync(grain);
    }

    /// <summary>A grain's entry for a write: a grain table that cannot be read fails the write with EINVAL, as in QEMU.</summary>
    private ValueTask<uint> GetWriteEntryAsync(long grain)
    {
        if (TryGetCachedEntry(grain, out uint entry))
            return new ValueTask<uint>(entry);
        return LoadWriteEntryAsync(grain);
    }

    private async ValueTask<uint> LoadWriteEntryAsync(long grain)
    {
        try
        {
            return await LoadEntryAsync(grain).ConfigureAwait(false);
        }
        catch (BlockException e) when (e.Errno != Errno.EINVAL)
        {
            throw new BlockException(Errno.EINVAL, "VMDK: grain table unreadable: " + e.Message);
        }
    }

    private async ValueTask<uint> LoadEntryAsync(long grain)
    {
        await _metadataLock.WaitAsync().ConfigureAwait(false);
        try
        {
            return await GetEntryLockedAsync(grain).ConfigureAwait(false);
        }
        finally
        {
            _metadataLock.Release();
        }
    }

    /// <summary>The entry of <paramref name="grain"/>, loading its table; the caller holds the metadata lock.</summary>
    private async ValueTask<uint> GetEntryLockedAsync(long grain)
    {
        long table = grain / _tableEntries;
        var entries = await GetTableLockedAsync(table).ConfigureAwait(false);
        return entries is null ? 0 : entries[grain - table * _tableEntries];
    }

    private async ValueTask<uint[]?> GetTableLockedAsync(long table)
    {
        if ((ulong)table >= (ulong)_directory.Length)
            throw new ImageFormatException($"VMDK grain directory index {table} is beyond the directory ({_directory.Length} entries)", Errno.EIO);
        var cached = _cache.TryGet(table);
        if (cached != null)
            return cached;
        uint sector = _directory[table];
        if (sector == 0)
            return null;
        long at = (long)sector << 9;
        int bytes = _geometry.TableBytes;
        if (at + bytes > _fileLength)
            throw new ImageFormatException($"VMDK grain table {table} at offset {at} ends beyond the end of the file ({_fileLength} bytes)", Errno.EIO);
        var entries = new uint[_tableEntries];
        await File.DebugEventAsync(BlkdebugEvent.L2Load).ConfigureAwait(false);
        await ReadEntriesAsync(File, _buffers, at, entries).ConfigureAwait(false);
        _cache.Put(table, entries);
        return entries;
    }

    /// <summary>Fails unless the grain table of <paramref name="grain"/> exists: grain tables are never allocated here.</summary>
    private void RequireTable(long grain)
    {
        long table = grain / _tableEntries;
        if (_directory[table] == 0)
            throw new BlockException(Errno.EIO, $"VMDK grain table {table} is not allocated (grain directory entry 0): cannot allocate grains in it");
    }

    /// <summary>
    /// Sets the entries of <paramref name="count"/> grains from <paramref name="firstGrain"/> to
    /// <paramref name="firstValue"/> + i·<paramref name="step"/>, in the primary and the redundant grain table, then in
    /// memory. The caller holds the metadata lock and has written the data the entries point to.
    /// </summary>
    private async ValueTask SetEntriesAsync(long firstGrain, int count, uint firstValue, uint step)
    {
        int done = 0;
        while (done < count)
        {
            long grain = firstGrain + done;
            long table = grain / _tableEntries;
            int index = (int)(grain - table * _tableEntries);
            int n = Math.Min(count - done, _tableEntries - index);
            var entries = await GetTableLockedAsync(table).ConfigureAwait(false)
                ?? throw new BlockException(Errno.EIO, $"VMDK grain table {table} is not allocated");
            var buffer = _buffers.Rent(n * 4);
            try
            {
                var bytes = buffer.Memory[..(n * 4)];
                for (int i = 0; i < n; i++)
                    BinaryPrimitives.WriteUInt32LittleEndian(bytes.Span[(i * 4)..], unchecked(firstValue + (uint)(done + i) * step));
                long primary = ((long)_directory[table] << 9) + index * 4L;
                await File.DebugEventAsync(BlkdebugEvent.L2Update).ConfigureAwait(false);
                await File.WriteAsync(primary, bytes).ConfigureAwait(false);
                if (_redundantDirectory != null && _redundantDirectory[table] != 0)
                    await File.WriteAsync(((long)_redundantDirectory[table] << 9) + index * 4L, bytes).ConfigureAwait(false);
                for (int i = 0; i < n; i++)
                    Volatile.Write(ref entries[index + i], unchecked(firstValue + (uint)(done + i) * step));
            }
            finally
            {
                buffer.Return(clear: false);
            }
            done += n;
        }
    }

    private long AllocateSectors(long sectors)
    {
        long sector = _nextSector;
        if (sector + sectors > uint.MaxValue)
            throw new BlockException(Errno.ENOSPC, $"VMDK extent '{File.Filename}' is full: grain offsets are 32-bit sector numbers (2 TiB)");
        _nextSector = sector + sectors;
        return sector;
    }

    private void NoteFileEnd(long end)
    {
        if (end > _fileLength)
            _fileLength = end;
    }

    private void CheckWritable(uint entry, long grain)
    {
        if (entry < _geometry.OverheadSectors)
            throw new ImageFormatException($"VMDK grain table entry of grain {grain} points into the metadata (sector {entry}, grains start at {_geometry.OverheadSectors})", Errno.EIO);
    }
}
