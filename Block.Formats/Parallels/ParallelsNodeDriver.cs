using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Numerics;
using System.Runtime.CompilerServices;
using Block.Drivers;
using Block.Graph;
using Block.Io;
using Block.Qapi;

namespace Block.Formats.Parallels;

/// <summary>
/// One open Parallels image: its header, its BAT in memory, and clusters appended to its file's data area.
/// </summary>
/// <remarks>
/// <para>A read or write of an allocated cluster looks up one BAT entry and passes the request to the file, with no
/// lock and no allocation. Allocation is serialised by one lock: the new clusters are written at the data area's end
/// (the request's data, and around it the backing image's bytes or zeroes), then the BAT sector that names them, so a
/// crash leaves at worst clusters nothing names, which <c>check</c> counts as leaked space at the end.</para>
/// <para>As in QEMU, a writable open sets the header's in-use flag (and flushes it) before anything else is written,
/// and a clean close clears it and truncates the file to the end of the data area; an image found with the flag set
/// opens read-only, or for a check, only.</para>
/// <para>Beyond QEMU: a BAT entry past the end of the file reads as zeroes (as there) but is never written through and
/// never moves the data area's end, so a hostile entry cannot make a close grow the file to petabytes; an entry that
/// names the header or the BAT is never written through either.</para>
/// </remarks>
internal sealed partial class ParallelsNodeDriver : NodeDriver
{
    private readonly BlockNode _file;
    private readonly ParallelsHeader _header;
    /// <summary>The header's 64 bytes as the file holds them, with the in-use flag as this node last wrote it.</summary>
    private readonly byte[] _headerBytes;
    private readonly uint[] _bat;
    private readonly uint _batSize;
    private readonly long _clusterSize;
    /// <summary>log2 of the cluster size when it is a power of two (QEMU allows any multiple of 512), else -1.</summary>
    private readonly int _clusterShift;
    /// <summary>Bytes per unit of a BAT entry: a sector (old signature) or a cluster (new).</summary>
    private readonly long _entryUnit;
    /// <summary>How much a BAT entry grows from one cluster to the next one in the file.</summary>
    private readonly uint _entryStep;
    private readonly long _dataStart;
    private readonly long _imageSize;
    private readonly bool _readOnly;
    private readonly SemaphoreSlim _lock = new(1, 1);
    /// <summary>Where the next cluster goes (QEMU's <c>data_end</c>); only grows, under <see cref="_lock"/>.</summary>
    private long _dataEnd;
    /// <summary>The image was found with the in-use flag set and no check has repaired that yet (QEMU's <c>header_unclean</c>).</summary>
    private bool _unclean;
    /// <summary>This node set the in-use flag in the file, so a close must clear it.</summary>
    private bool _inUseWritten;
    /// <summary>A leak repair truncated the file inside the BAT (as QEMU does for an empty image): the close writes it back.</summary>
    private bool _batCut;
    private ParallelsPreallocMode _preallocMode;
    /// <summary>What the file grows by past the clusters a write needs when it must grow.</summary>
    private long _preallocBytes;

    private ParallelsNodeDriver(BlockNode node, BlockNode file, ParallelsHeader header, byte[] headerBytes, uint[] bat)
        : base(node)
    {
        _file = file;
        _header = header;
        _headerBytes = headerBytes;
        _bat = bat;
        _batSize = header.BatEntries;
        _clusterSize = header.ClusterSize;
        _clusterShift = BitOperations.IsPow2(_clusterSize) ? BitOperations.Log2((ulong)_clusterSize) : -1;
        _entryUnit = (long)header.OffsetMultiplier * 512;
        _entryStep = header.Extended ? 1 : header.Tracks;
        _dataStart = (long)header.DataStartSectors * 512;
        _imageSize = (long)header.DiskSectors * 512;
        _readOnly = node.ReadOnly;
        _unclean = ParallelsHeader.InUse(headerBytes) == ParallelsHeader.InUseMagic;

        // QEMU's data_end: the data area's start, moved past every cluster that starts at or after it. Entries past
        // the end of the file are left out (QEMU counts them, and a close then grows the file to reach them).
        long length = file.Length;
        long end = _dataStart;
        foreach (uint entry in bat)
        {
            long host = entry * _entryUnit;
            if (entry != 0 && host <= length && host >= end)
                end = host + _clusterSize;
        }
        _dataEnd = end;
    }

    /// <summary>Reads the header and BAT, refuses a writable open of an image left in use, opens a backing image given by the options, and marks the image in use.</summary>
    public static async ValueTask<ParallelsNodeDriver> OpenAsync(NodeOpenContext context, BlockdevOptionsParallels options, CancellationToken cancellationToken)
    {
        var file = (await context.OpenChildAsync("file", options.File, ChildRole.Storage, cancellationToken).ConfigureAwait(false)).Node;
        long length = file.Length;
        var headerBytes = new byte[ParallelsHeader.Size];
        int got = (int)Math.Min(length, ParallelsHeader.Size);
        if (got > 0)
            await file.ReadAsync(0, headerBytes.AsMemory(0, got)).ConfigureAwait(false);
        var header = ParallelsHeader.Parse(headerBytes, length);

        // Parse checked that the BAT lies in the file, so this allocation is backed by the file's bytes.
        var bat = new uint[header.BatEntries];
        if (bat.Length > 0)
        {
            var bytes = new byte[checked((int)(header.BatEnd - ParallelsHeader.Size))];
            await file.ReadAsync(ParallelsHeader.Size, bytes).ConfigureAwait(false);
            for (int i = 0; i < bat.Length; i++)
                bat[i] = BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(i * 4));
        }
        var driver = new ParallelsNodeDriver(context.Node, file, header, headerBytes, bat)
        {
            _preallocMode = options.PreallocMode,
            // At least a cluster, in whole sectors, as QEMU grows the file.
            _preallocBytes = (long)Math.Max((ulong)header.ClusterSize, Math.Min(options.PreallocSize, 1UL << 50) & ~511UL),
        };
        if (driver._unclean && !driver._readOnly && !options.ForCheck)
            throw new BlockException(Errno.EACCES, "parallels: Image was not closed correctly; cannot be opened read/write");

        // QEMU 7.2 reads the Format Extension (dirty bitmaps) only when the image is opened read-only: a writer would
        // change data the bitmaps do not track.
        if (header.ExtensionSectors != 0)
        {
            if (!driver._readOnly)
                context.Node.Graph.Warn("Format Extension ignored in RW mode");
            else if (header.ExtensionSectors > (ulong)(long.MaxValue - header.ClusterSize) / 512)
                throw new ImageFormatException("Failed to read Format Extension cluster: Invalid argument", Errno.EINVAL);
            else
            {
                foreach (var bitmap in await ParallelsFormatExtension.LoadBitmapsAsync(file, (long)header.ExtensionSectors * 512,
                    header.ClusterSize, header.DiskSectors).ConfigureAwait(false))
                {
                    context.Node.AttachDirtyBitmap(bitmap);
                }
            }
        }

        if (!options.NoBacking && options.Backing != null)
        {
            try
            {
                await context.OpenChildAsync("backing", options.Backing, ChildRole.Cow, cancellationToken).ConfigureAwait(false);
            }
            catch (BlockException e)
            {
                throw new BlockException(e.Errno, "Could not open backing file: " + e.Message, e);
            }
        }

        if (!driver._readOnly)
        {
            // The flag reaches the disk before any cluster or BAT entry does: a crash from here on leaves it set.
            ParallelsHeader.WriteInUse(headerBytes, ParallelsHeader.InUseMagic);
            await file.WriteAsync(0, headerBytes.AsMemory()).ConfigureAwait(false);
            await file.FlushAsync().ConfigureAwait(false);
            driver._inUseWritten = true;
        }
        return driver;
    }

    public override BlockLimits Limits => new() { RequestAlignment = 512 };

    public override long Length => _imageSize;

    /// <remarks>QEMU's parallels driver reports no driver information: <c>qemu-img info</c> shows neither a cluster size nor a dirty flag.</remarks>
    public override bool HasDriverInfo => false;

    public override bool HasZeroInit => Node.Backing is null;

    // ---- mapping ----------------------------------------------------------------------------------------------

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private long ClusterIndex(long offset) => _clusterShift >= 0 ? offset >> _clusterShift : offset / _clusterSize;

    /// <summary>The BAT entry of guest cluster <paramref name="index"/>; 0 (unallocated) past the BAT, where a header claims a disk larger than its BAT maps.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private uint Entry(long index) => (ulong)index < _batSize ? Volatile.Read(ref _bat[index]) : 0;

    /// <summary>True if <paramref name="next"/> is read like <paramref name="entry"/> continued by one cluster: the next cluster of the file, or unallocated too.</summary>
    private bool Continues(uint entry, uint next) => entry == 0 ? next == 0 : next == (ulong)entry + _entryStep;

    /// <summary>True if a cluster at <paramref name="host"/> may be written: inside the data area, not over the header or the BAT.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool IsWritable(long host) => host >= _dataStart && host + _clusterSize <= Volatile.Read(ref _dataEnd);

    // ---- read -------------------------------------------------------------------------------------------------

    public override ValueTask ReadAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        long index = ClusterIndex(offset);
        long inCluster = offset - index * _clusterSize;
        if (inCluster + buffers.Length <= _clusterSize)
            return ReadRunAsync(index, Entry(index), inCluster, buffers);
        return ReadSlowAsync(offset, buffers);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ReadSlowAsync(long offset, IoVector buffers)
    {
        int done = 0;
        while (done < buffers.Length)
        {
            long at = offset + done;
            long index = ClusterIndex(at);
            long inCluster = at - index * _clusterSize;
            uint entry = Entry(index);
            // One request per run of clusters that read alike: contiguous in the file, or all unallocated.
            long n = _clusterSize - inCluster;
            for (long i = index; n < buffers.Length - done && Continues(entry, Entry(i + 1)); i++)
                n += _clusterSize;
            n = Math.Min(n, buffers.Length - done);
            await ReadRunAsync(index, entry, inCluster, buffers.Slice(done, (int)n)).ConfigureAwait(false);
            done += (int)n;
        }
    }

    /// <summary>Reads <paramref name="buffers"/> from <paramref name="inCluster"/> bytes into guest cluster <paramref name="index"/>, whose BAT entry is <paramref name="entry"/>.</summary>
    private ValueTask ReadRunAsync(long index, uint entry, long inCluster, IoVector buffers)
    {
        // A cluster past the end of the file reads as zeroes there, as QEMU reads it.
        if (entry != 0)
            return BackingReads.ReadAsync(_file, entry * _entryUnit + inCluster, buffers);
        if (Node.Backing?.Node is { } backing)
            return BackingReads.ReadAsync(backing, index * _clusterSize + inCluster, buffers);
        buffers.Clear();
        return default;
    }

    // ---- write ------------------------------------------------------------------------------------------------

    public override ValueTask WriteAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        long index = ClusterIndex(offset);
        long inCluster = offset - index * _clusterSize;
        if (inCluster + buffers.Length <= _clusterSize)
        {
            uint entry = Entry(index);
            long host = entry * _entryUnit;
            if (entry != 0 && IsWritable(host))
                return _file.WriteAsync(host + inCluster, buffers);
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
            long index = ClusterIndex(at);
            if (index >= _batSize)
                ThrowPastBat(at);
            uint entry = Entry(index);
            long n;
            if (entry != 0)
            {
                // Allocated clusters never move while the image is open: write the run in place, without the lock.
                n = AllocatedRun(index, entry, at - index * _clusterSize, buffers.Length - done);
                await _file.WriteAsync(entry * _entryUnit + (at - index * _clusterSize), buffers.Slice(done, (int)n)).ConfigureAwait(false);
            }
            else
            {
                await _lock.WaitAsync().ConfigureAwait(false);
                try
                {
                    n = await AllocateLockedAsync(at, buffers.Slice(done)).ConfigureAwait(false);
                }
                finally
                {
                    _lock.Release();
                }
            }
            done += (int)n;
        }
    }

    /// <summary>Bytes from <paramref name="inCluster"/> into cluster <paramref name="index"/> (at most <paramref name="remaining"/>) that lie in clusters following <paramref name="entry"/>'s in the file.</summary>
    private long AllocatedRun(long index, uint entry, long inCluster, long remaining)
    {
        if (!IsWritable(entry * _entryUnit))
            throw NotWritable(index, entry);
        long n = _clusterSize - inCluster;
        for (long i = index; n < remaining && Continues(entry, Entry(i + 1)) && IsWritable(Entry(i + 1) * _entryUnit); i++)
            n += _clusterSize;
        return Math.Min(n, remaining);
    }

    /// <summary>
    /// Under <see cref="_lock"/>: writes the start of <paramref name="data"/> at guest <paramref name="at"/>, into the run
    /// of unallocated clusters there (allocated at the data area's end, in guest order, as QEMU allocates them), or
    /// in place if another write allocated the cluster meanwhile. Returns the bytes written.
    /// </summary>
    private async ValueTask<long> AllocateLockedAsync(long at, IoVector data)
    {
        long index = ClusterIndex(at);
        long inCluster = at - index * _clusterSize;
        uint entry = _bat[index];
        if (entry != 0)
        {
            long n = AllocatedRun(index, entry, inCluster, data.Length);
            await _file.WriteAsync(entry * _entryUnit + inCluster, data.Slice(0, (int)n)).ConfigureAwait(false);
            return n;
        }

        long runStart = index * _clusterSize;
        long requestEnd = at + data.Length;
        long count = 1;
        while (index + count < _batSize && runStart + count * _clusterSize < requestEnd && _bat[index + count] == 0)
            count++;
        long runBytes = count * _clusterSize;
        long written = Math.Min(requestEnd, runStart + runBytes) - at;

        // New clusters start on a whole entry unit (QEMU would round the entry down and lose the cluster).
        long host = (_dataEnd + _entryUnit - 1) / _entryUnit * _entryUnit;
        if ((host + runBytes - _clusterSize) / _entryUnit > uint.MaxValue)
        {
            throw new BlockException(Errno.ENOSPC, string.Create(CultureInfo.InvariantCulture,
                $"Parallels image '{_file.Filename}' is full: its BAT cannot name a cluster at host offset 0x{host:x}"));
        }

        // The file grows past the new clusters by the preallocation, as QEMU's does: fewer, larger extensions, which
        // a clean close cuts back to the end of the data.
        if (host + runBytes > _file.Length)
        {
            long grownEnd = host + runBytes + _preallocBytes;
            if (_preallocMode == ParallelsPreallocMode.Truncate)
                await _file.TruncateAsync(grownEnd, PreallocMode.Off, exact: true).ConfigureAwait(false);
            else
                await _file.WriteZeroesAsync(_file.Length, grownEnd - _file.Length).ConfigureAwait(false);
        }

        // The clusters whole, before the BAT entries that name them.
        await FillAsync(host, runStart, at - runStart).ConfigureAwait(false);
        long tail = at + written - runStart;
        await FillAsync(host + tail, runStart + tail, runBytes - tail).ConfigureAwait(false);
        await _file.WriteAsync(host + inCluster, data.Slice(0, (int)written)).ConfigureAwait(false);

        for (long i = 0; i < count; i++)
            Volatile.Write(ref _bat[index + i], (uint)((host + i * _clusterSize) / _entryUnit));
        Volatile.Write(ref _dataEnd, host + runBytes);
        await WriteBatAsync(index, count).ConfigureAwait(false);
        return written;
    }

    /// <summary>
    /// Writes <paramref name="length"/> bytes at <paramref name="host"/> of new clusters that map guest
    /// <paramref name="guest"/> and that the request does not cover: what they read before, the backing image's
    /// bytes, or zeroes.
    /// </summary>
    private async ValueTask FillAsync(long host, long guest, long length)
    {
        if (length == 0)
            return;
        if (Node.Backing?.Node is not { } backing)
        {
            await _file.WriteZeroesAsync(host, length).ConfigureAwait(false);
            return;
        }
        int chunk = (int)Math.Min(length, 1 << 20);
        var buffer = Node.Graph.Buffers.Rent(chunk);
        try
        {
            for (long done = 0; done < length; done += chunk)
            {
                var part = buffer.Memory[..(int)Math.Min(chunk, length - done)];
                await BackingReads.ReadAsync(backing, guest + done, part).ConfigureAwait(false);
                await _file.WriteAsync(host + done, part).ConfigureAwait(false);
            }
        }
        finally
        {
            buffer.Return(clear: false);
        }
    }

    /// <summary>Writes the sectors of the BAT that hold entries <paramref name="first"/> to <paramref name="first"/>+<paramref name="count"/>.</summary>
    private async ValueTask WriteBatAsync(long first, long count)
    {
        // Whole sectors of the BAT (the first one starts with the header), but never past its end.
        long start = (ParallelsHeader.Size + first * 4) & ~511L;
        long end = Math.Min((ParallelsHeader.Size + (first + count) * 4 + 511) & ~511L, _header.BatEnd);
        int bytes = (int)(end - start);
        var buffer = Node.Graph.Buffers.Rent(bytes);
        try
        {
            var span = buffer.Memory.Span[..bytes];
            for (long at = Math.Max(start, ParallelsHeader.Size); at < end; at += 4)
                BinaryPrimitives.WriteUInt32LittleEndian(span[(int)(at - start)..], _bat[(at - ParallelsHeader.Size) / 4]);
            if (start == 0)
                _headerBytes.CopyTo(span);
            await _file.WriteAsync(start, buffer.Memory[..bytes]).ConfigureAwait(false);
        }
        finally
        {
            buffer.Return(clear: false);
        }
    }

    // ---- block status -----------------------------------------------------------------------------------------

    public override ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length, bool wantZero)
    {
        long index = ClusterIndex(offset);
        long inCluster = offset - index * _clusterSize;
        uint entry = Entry(index);
        long bytes = Math.Min(length, _clusterSize - inCluster);
        for (long i = index; bytes < length && Continues(entry, Entry(i + 1)); i++)
            bytes = Math.Min(length, bytes + _clusterSize);
        if (entry == 0)
            return new(new BlockStatus(BlockStatusFlags.None, bytes));
        return new(new BlockStatus(BlockStatusFlags.Data | BlockStatusFlags.OffsetValid, bytes, entry * _entryUnit + inCluster, _file));
    }

    // ---- close ------------------------------------------------------------------------------------------------

    public override async ValueTask DisposeAsync()
    {
        if (_inUseWritten)
        {
            // A clean close, as QEMU's: the flag cleared, the file cut (or grown) to the end of the data area.
            await _lock.WaitAsync().ConfigureAwait(false);
            try
            {
                await _file.FlushAsync().ConfigureAwait(false);
                ParallelsHeader.WriteInUse(_headerBytes, 0);
                await _file.WriteAsync(0, _headerBytes.AsMemory()).ConfigureAwait(false);
                if (_file.Length != _dataEnd)
                {
                    try
                    {
                        await _file.TruncateAsync(_dataEnd, PreallocMode.Off, exact: true).ConfigureAwait(false);
                    }
                    catch (BlockException)
                    {
                        // A block device cannot be resized: QEMU ignores that too.
                    }
                }
                if (_batCut)
                    await WriteBatAsync(0, _batSize).ConfigureAwait(false);
                await _file.FlushAsync().ConfigureAwait(false);
            }
            finally
            {
                _lock.Release();
            }
        }
        _lock.Dispose();
        await base.DisposeAsync().ConfigureAwait(false);
    }

    // ---- errors -----------------------------------------------------------------------------------------------

    private ImageFormatException NotWritable(long index, uint entry) =>
        new(string.Create(CultureInfo.InvariantCulture,
            $"Corrupt Parallels image '{_file.Filename}': BAT entry {index} names host offset 0x{entry * _entryUnit:x}, outside the data area (0x{_dataStart:x} to 0x{Volatile.Read(ref _dataEnd):x}); 'check -r all' repairs entries past the end of the file"), Errno.EIO);

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowPastBat(long guestOffset) =>
        throw new ImageFormatException(string.Create(CultureInfo.InvariantCulture,
            $"Invalid Parallels image '{_file.Filename}': guest offset 0x{guestOffset:x} lies past the {_batSize} clusters its BAT maps"), Errno.EIO);
}
