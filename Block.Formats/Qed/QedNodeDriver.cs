using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Numerics;
using System.Runtime.CompilerServices;
using Block.Drivers;
using Block.Graph;
using Block.Io;
using Block.Qapi;

namespace Block.Formats.Qed;

/// <summary>
/// One open QED image: its header, its L1 table and the L2 tables it has read, all in memory, and data clusters in
/// its file.
/// </summary>
/// <remarks>
/// <para>A read or write of an allocated cluster looks up one L2 entry and passes the request to the file, with no lock
/// and no allocation. Allocation (data clusters, zero clusters, new L2 tables) is serialised by one lock, and
/// written in QEMU's order: the need-check flag first (images without a backing file), then the data clusters
/// whole, then (with a backing file, after a flush) the L2 entries, and for a new L2 table the table, then its L1
/// entry. A crash in between leaves clusters nothing points at, or, without a backing file, entries the need-check
/// repair on the next writable open removes.</para>
/// <para>L2 tables are read once and kept: an L2 table of the default geometry (256 KiB) maps 2 GiB, so a fully
/// allocated 1 TiB image holds 128 MiB of tables. Tables are shared by file offset, so a hostile image whose L1
/// entries all name one table costs one table, and the memory held never exceeds the file's size.</para>
/// </remarks>
internal sealed partial class QedNodeDriver : NodeDriver
{
    private const ulong ZeroCluster = 1;

    private readonly BlockNode _file;
    private readonly QedHeader _header;
    private readonly byte[] _headerSector;
    private readonly long _clusterSize;
    private readonly int _clusterShift;
    private readonly int _l2Shift;
    private readonly int _tableEntries;
    private readonly ulong[] _l1;
    private readonly ulong[]?[] _l2;
    private readonly Dictionary<ulong, ulong[]> _l2ByOffset = [];
    private readonly SemaphoreSlim _lock = new(1, 1);
    private readonly bool _readOnly;
    /// <summary>Where the next cluster is allocated: the file's end rounded up to a cluster; only changed under <see cref="_lock"/>.</summary>
    private long _fileEnd;
    private long _imageSize;

    private QedNodeDriver(BlockNode node, BlockNode file, QedHeader header, byte[] headerSector, ulong[] l1)
        : base(node)
    {
        _file = file;
        _header = header;
        _headerSector = headerSector;
        _clusterSize = header.ClusterSize;
        _clusterShift = BitOperations.Log2(header.ClusterSize);
        _tableEntries = header.TableEntries;
        _l2Shift = BitOperations.Log2((uint)_tableEntries);
        _l1 = l1;
        _l2 = new ulong[]?[l1.Length];
        _readOnly = node.ReadOnly;
        _imageSize = (long)header.ImageSize;
        _fileEnd = (file.Length + _clusterSize - 1) & ~(_clusterSize - 1);
    }

    /// <summary>Reads the header and L1 table, opens the backing file, and checks an image left with need-check set.</summary>
    public static async ValueTask<QedNodeDriver> OpenAsync(NodeOpenContext context, BlockdevOptionsGenericCowFormat options, CancellationToken cancellationToken)
    {
        var file = (await context.OpenChildAsync("file", options.File, ChildRole.Storage, cancellationToken).ConfigureAwait(false)).Node;
        long length = file.Length;
        var first = new byte[(int)Math.Min(length, 4096)];
        if (first.Length > 0)
            await file.ReadAsync(0, first.AsMemory()).ConfigureAwait(false);
        if (!QedHeader.HasMagic(first) || first.Length < QedHeader.Size)
            throw new ImageFormatException("Image not in QED format");
        // The backing name may lie anywhere in the header clusters; read them whole (bounded by the file's length).
        uint headerClusters = BinaryPrimitives.ReadUInt32LittleEndian(first.AsSpan(12));
        uint clusterSize = BinaryPrimitives.ReadUInt32LittleEndian(first.AsSpan(4));
        long headerBytes = Math.Min(length, (long)headerClusters * clusterSize);
        if (headerBytes > first.Length && headerBytes <= 64L << 20)
        {
            first = new byte[headerBytes];
            await file.ReadAsync(0, first.AsMemory()).ConfigureAwait(false);
        }
        var header = QedHeader.Parse(first, length);

        // Parse checked that the L1 table lies inside the file, so this allocation is backed by the file's bytes.
        var l1Bytes = new byte[header.TableBytes];
        await file.ReadAsync((long)header.L1TableOffset, l1Bytes.AsMemory()).ConfigureAwait(false);
        var l1 = new ulong[header.TableEntries];
        for (int i = 0; i < l1.Length; i++)
            l1[i] = BinaryPrimitives.ReadUInt64LittleEndian(l1Bytes.AsSpan(i * 8));

        var headerSector = new byte[512];
        first.AsSpan(0, Math.Min(512, first.Length)).CopyTo(headerSector);
        var driver = new QedNodeDriver(context.Node, file, header, headerSector, l1);

        if (!options.NoBacking)
        {
            try
            {
                if (options.Backing != null)
                    await context.OpenChildAsync("backing", options.Backing, ChildRole.Cow, cancellationToken).ConfigureAwait(false);
                else if (header.BackingFilename is { Length: > 0 } backing)
                    await context.OpenReferencedImageAsync("backing", backing, driver.BackingFileFormat, ChildRole.Cow, readOnly: true, cancellationToken).ConfigureAwait(false);
            }
            catch (BlockException e)
            {
                throw new BlockException(e.Errno, "Could not open backing file: " + e.Message, e);
            }
        }

        if (!driver._readOnly)
        {
            if (header.AutoclearFeatures != 0)
            {
                // Autoclear bits this implementation does not know are cleared by any writer, as the spec asks.
                header.AutoclearFeatures = 0;
                await driver.WriteHeaderAsync().ConfigureAwait(false);
            }
            // A writable open (other than one to check the image) repairs what a crash may have left, as QEMU does;
            // a read-only open trusts the image as it is, so that data can still be read out of a broken one.
            if ((header.Features & QedHeader.FeatureNeedCheck) != 0 && !options.ForCheck)
                await driver.CheckAsync(CheckRepair.All).ConfigureAwait(false);
        }
        return driver;
    }

    public override BlockLimits Limits => new() { RequestAlignment = 512, MaxTransfer = 32 << 20 };

    public override RequestFlags SupportedZeroFlags => RequestFlags.MayUnmap;

    public override long Length => _imageSize;

    public override long? ClusterSize => _clusterSize;

    public override bool? DirtyFlag => false;

    public override string? BackingFileName => _header.BackingFilename is { Length: > 0 } name ? name : null;

    public override string? BackingFileFormat =>
        BackingFileName != null && (_header.Features & QedHeader.FeatureBackingFormatNoProbe) != 0 ? "raw" : null;

    public override bool HasZeroInit => Node.Backing is null;

    // ---- mapping ----------------------------------------------------------------------------------------------

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int L1Index(long offset) => (int)(offset >> (_clusterShift + _l2Shift));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int L2Index(long offset) => (int)((offset >> _clusterShift) & (_tableEntries - 1));

    /// <summary>The L2 table of <paramref name="l1Index"/>, read from the file on first use; null if the L1 entry is empty.</summary>
    private async ValueTask<ulong[]?> GetL2Async(int l1Index)
    {
        var table = Volatile.Read(ref _l2[l1Index]);
        if (table != null || _l1[l1Index] == 0)
            return table;
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            return await GetL2LockedAsync(l1Index).ConfigureAwait(false);
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary><see cref="GetL2Async"/> under <see cref="_lock"/>: a table is read and published once, so no write to it is lost.</summary>
    private async ValueTask<ulong[]?> GetL2LockedAsync(int l1Index)
    {
        var table = _l2[l1Index];
        ulong offset = _l1[l1Index];
        if (table != null || offset == 0)
            return table;
        if (!IsValidTableOffset(offset))
            ThrowBadL1Entry(l1Index, offset);
        if (!_l2ByOffset.TryGetValue(offset, out table))
        {
            var bytes = Node.Graph.Buffers.Rent((int)_header.TableBytes);
            try
            {
                var span = bytes.Memory[..(int)_header.TableBytes];
                await _file.ReadAsync((long)offset, span).ConfigureAwait(false);
                table = new ulong[_tableEntries];
                for (int i = 0; i < table.Length; i++)
                    table[i] = BinaryPrimitives.ReadUInt64LittleEndian(span.Span[(i * 8)..]);
            }
            finally
            {
                bytes.Return(clear: false);
            }
            _l2ByOffset[offset] = table;
        }
        Volatile.Write(ref _l2[l1Index], table);
        return table;
    }

    private bool IsValidTableOffset(ulong offset) =>
        (offset & (ulong)(_clusterSize - 1)) == 0 && offset >= (ulong)_clusterSize * _header.HeaderSize
        && offset <= (ulong)_file.Length && (ulong)_file.Length - offset >= (ulong)_header.TableBytes;

    private bool IsValidClusterOffset(ulong offset) =>
        (offset & (ulong)(_clusterSize - 1)) == 0 && offset >= (ulong)_clusterSize * _header.HeaderSize
        && offset < (ulong)_fileEnd && offset <= long.MaxValue;

    // ---- read -------------------------------------------------------------------------------------------------

    public override ValueTask ReadAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        long inCluster = offset & (_clusterSize - 1);
        if (inCluster + buffers.Length <= _clusterSize)
        {
            var table = Volatile.Read(ref _l2[L1Index(offset)]);
            if (table != null)
                return ReadEntryAsync(offset, table[L2Index(offset)], buffers);
        }
        return ReadSlowAsync(offset, buffers);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ReadSlowAsync(long offset, IoVector buffers)
    {
        int done = 0;
        while (done < buffers.Length)
        {
            long at = offset + done;
            var table = await GetL2Async(L1Index(at)).ConfigureAwait(false);
            int index = L2Index(at);
            ulong entry = table?[index] ?? 0;
            // One request per run of clusters that read alike: contiguous in the file, or all zero, or all from the backing file.
            long runEnd = ((at >> _clusterShift) + 1) << _clusterShift;
            while (runEnd < offset + buffers.Length && table != null && index + 1 < _tableEntries && Continues(entry, table, index, runEnd - (at & ~(_clusterSize - 1))))
            {
                index++;
                runEnd += _clusterSize;
            }
            int n = (int)Math.Min(buffers.Length - done, runEnd - at);
            await ReadEntryAsync(at, entry, buffers.Slice(done, n)).ConfigureAwait(false);
            done += n;
        }
    }

    /// <summary>True if entry <paramref name="index"/>+1 of <paramref name="table"/> reads like <paramref name="first"/> continued by <paramref name="distance"/> bytes.</summary>
    private static bool Continues(ulong first, ulong[] table, int index, long distance)
    {
        ulong next = table[index + 1];
        return first <= ZeroCluster ? next == first : next == first + (ulong)distance;
    }

    private async ValueTask ReadReportedAsync(long host, IoVector buffers)
    {
        await _file.DebugEventAsync(Drivers.Blkdebug.BlkdebugEvent.ReadAio).ConfigureAwait(false);
        await _file.ReadAsync(host, buffers).ConfigureAwait(false);
    }

    /// <summary>Reads <paramref name="buffers"/> at guest <paramref name="offset"/>, which the L2 <paramref name="entry"/> (of its first cluster) maps.</summary>
    private ValueTask ReadEntryAsync(long offset, ulong entry, IoVector buffers)
    {
        if (entry > ZeroCluster)
        {
            if (!IsValidClusterOffset(entry))
                return ValueTask.FromException(BadL2Entry(offset, entry));
            if (BlockNode.DebugEventsEnabled)
                return ReadReportedAsync((long)entry + (offset & (_clusterSize - 1)), buffers);
            return _file.ReadAsync((long)entry + (offset & (_clusterSize - 1)), buffers);
        }
        if (entry == 0 && Node.Backing?.Node is { } backing)
            return BackingReads.ReadAsync(backing, offset, buffers);
        buffers.Clear();
        return default;
    }

    // ---- block status -----------------------------------------------------------------------------------------

    public override async ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length, bool wantZero)
    {
        var table = await GetL2Async(L1Index(offset)).ConfigureAwait(false);
        int index = L2Index(offset);
        ulong entry = table?[index] ?? 0;
        long inCluster = offset & (_clusterSize - 1);
        long bytes = Math.Min(length, _clusterSize - inCluster);
        while (bytes < length && table != null && index + 1 < _tableEntries && Continues(entry, table, index, bytes + inCluster))
        {
            index++;
            bytes = Math.Min(length, bytes + _clusterSize);
        }
        if (table is null)
        {
            // No L2 table: the rest of this table's range is unallocated.
            long tableSpan = (long)_tableEntries << _clusterShift;
            bytes = Math.Min(length, tableSpan - (offset & (tableSpan - 1)));
        }
        if (entry > ZeroCluster)
        {
            if (!IsValidClusterOffset(entry))
                throw BadL2Entry(offset, entry);
            return new BlockStatus(BlockStatusFlags.Data | BlockStatusFlags.OffsetValid, bytes, (long)entry + inCluster, _file);
        }
        return new BlockStatus(entry == ZeroCluster ? BlockStatusFlags.Zero : BlockStatusFlags.None, bytes);
    }

    // ---- header -----------------------------------------------------------------------------------------------

    /// <summary>Writes the header's first sector with the in-memory fields (the backing name after them is kept as read).</summary>
    private ValueTask WriteHeaderAsync()
    {
        _header.Write(_headerSector);
        return _file.WriteAsync(0, _headerSector.AsMemory());
    }

    public override async ValueTask TruncateAsync(long length, PreallocMode preallocation, bool exact)
    {
        if (preallocation != PreallocMode.Off)
            throw new BlockException(Errno.ENOTSUP, "Unsupported preallocation mode '" + Qapi.QapiEnum<PreallocMode>.ToWire(preallocation) + "'");
        if (length % 512 != 0 || (ulong)length > _header.MaxImageSize)
            throw new BlockException(Errno.EINVAL, "Invalid image size specified");
        if (length < _imageSize)
            throw new BlockException(Errno.ENOTSUP, "Shrinking images is currently not supported");
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            ulong old = _header.ImageSize;
            _header.ImageSize = (ulong)length;
            try
            {
                await WriteHeaderAsync().ConfigureAwait(false);
                await _file.FlushAsync().ConfigureAwait(false);
            }
            catch
            {
                _header.ImageSize = old;
                throw;
            }
            _imageSize = length;
        }
        finally
        {
            _lock.Release();
        }
    }

    public override async ValueTask DisposeAsync()
    {
        if (!_readOnly && (_header.Features & QedHeader.FeatureNeedCheck) != 0)
        {
            // A clean close: everything the metadata names is in the file, so the image needs no check.
            await _lock.WaitAsync().ConfigureAwait(false);
            try
            {
                await _file.FlushAsync().ConfigureAwait(false);
                _header.Features &= ~QedHeader.FeatureNeedCheck;
                await WriteHeaderAsync().ConfigureAwait(false);
                await _file.FlushAsync().ConfigureAwait(false);
            }
            catch (BlockException)
            {
                // As QEMU's close, which reports nothing here: the image keeps (or may keep) its need-check flag, so
                // the next writable open checks it.
                _header.Features |= QedHeader.FeatureNeedCheck;
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

    private ImageFormatException BadL2Entry(long guestOffset, ulong entry) =>
        new(string.Create(CultureInfo.InvariantCulture,
            $"Corrupt QED image '{_file.Filename}': the L2 entry for guest offset 0x{guestOffset & ~(_clusterSize - 1):x} names cluster offset 0x{entry:x}, which is not a cluster of the file"), Errno.EIO);

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowBadL1Entry(int l1Index, ulong offset) =>
        throw new ImageFormatException(string.Create(CultureInfo.InvariantCulture,
            $"Corrupt QED image '{_file.Filename}': L1 entry {l1Index} names L2 table offset 0x{offset:x}, which is not a table of the file"), Errno.EIO);
}
