using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.IO.Compression;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json.Nodes;
using Block.Crypto.Ciphers;
using Block.Drivers;
using Block.Graph;
using Block.Io;
using Block.Qapi;

namespace Block.Formats.Qcow;

/// <summary>
/// One open qcow (v1) image: its header, its L1 table and the L2 tables it has read, all in memory; data clusters
/// (plain, legacy-AES encrypted, or deflate-compressed) in its file.
/// </summary>
/// <remarks>
/// <para>A read or write of an allocated plain cluster looks up one L2 entry and passes the request to the file, with
/// no lock and no allocation (encrypted images add the cipher, in place or through one pooled bounce buffer).
/// Allocation is serialised by one lock and laid out as QEMU lays it out, so the same writes give the same file: a new
/// L2 table at the end of the file rounded up to a cluster, then the data cluster after it. It is written in the order
/// that survives a crash: the whole data cluster, a flush, then the L2 entry (or the new table, a flush, then its L1
/// entry). A crash in between leaves a cluster nothing names, never an entry naming unwritten data.</para>
/// <para>L2 tables are read once and kept, shared by file offset: a table maps 2 MiB (4 KiB clusters) and costs 4 KiB,
/// and the memory held never exceeds the file's size.</para>
/// </remarks>
internal sealed partial class QcowNodeDriver : NodeDriver
{
    private const ulong CompressedFlag = 1UL << 63;

    private readonly BlockNode _file;
    private readonly QcowHeader _header;
    private readonly long _clusterSize;
    private readonly int _clusterBits;
    private readonly int _l2Bits;
    private readonly int _l2Entries;
    private readonly ulong[] _l1;
    private readonly ulong[]?[] _l2;
    private readonly Dictionary<ulong, ulong[]> _l2ByOffset = [];
    private readonly SemaphoreSlim _lock = new(1, 1);
    private readonly SectorCipher? _cipher;
    /// <summary>True for an image without encryption: its clusters hold the guest's bytes as they are.</summary>
    private readonly bool _plain;
    private readonly string? _backingName;
    private readonly string? _keySecret;
    /// <summary>The last cluster inflated, by its L2 entry (QEMU keeps one too); only used under <see cref="_lock"/>.</summary>
    private readonly byte[] _inflated;
    private ulong _inflatedEntry;
    /// <summary>The file's length as allocation sees it (QEMU's <c>bdrv_getlength</c>); only changed under <see cref="_lock"/>.</summary>
    private long _fileEnd;

    private QcowNodeDriver(BlockNode node, BlockNode file, QcowHeader header, ulong[] l1, SectorCipher? cipher, string? backingName, string? keySecret)
        : base(node)
    {
        _file = file;
        _header = header;
        _clusterBits = header.ClusterBits;
        _clusterSize = 1L << _clusterBits;
        _l2Bits = header.L2Bits;
        _l2Entries = 1 << _l2Bits;
        _l1 = l1;
        _l2 = new ulong[]?[l1.Length];
        _cipher = cipher;
        _plain = header.CryptMethod == QcowHeader.CryptNone;
        _backingName = backingName;
        _keySecret = keySecret;
        _inflated = new byte[_clusterSize];
        _fileEnd = file.Length;
    }

    /// <summary>Reads and checks the header, keys the cipher, reads the L1 table and opens the backing file.</summary>
    public static async ValueTask<QcowNodeDriver> OpenAsync(NodeOpenContext context, BlockdevOptionsQcow options, CancellationToken cancellationToken)
    {
        var file = (await context.OpenChildAsync("file", options.File, ChildRole.Storage, cancellationToken).ConfigureAwait(false)).Node;
        long length = file.Length;
        var first = new byte[(int)Math.Min(length, QcowHeader.Size)];
        if (first.Length > 0)
            await file.ReadAsync(0, first.AsMemory()).ConfigureAwait(false);
        var header = QcowHeader.Parse(first);

        SectorCipher? cipher = null;
        string? format = options.Encrypt?.Format;
        if (header.CryptMethod == QcowHeader.CryptAes)
        {
            if (format is not (null or "aes"))
                throw new BlockOptionsException($"Header reported 'aes' encryption format but options specify '{format}'");
            if (!options.NoIo)
            {
                string id = options.Encrypt?.KeySecret ?? throw new BlockOptionsException("Parameter 'encrypt.key-secret' is required for cipher");
                cipher = LegacyQcowAes.CreateCipher(context.Graph.Secrets.Get(id).Span, id);
            }
        }
        else if (format != null)
        {
            throw new BlockOptionsException($"No encryption in image header, but options specified format '{format}'");
        }

        try
        {
            header.ValidateTables();
            // The L1 table is read into memory whole: it must lie in the file, so the allocation is backed by its bytes.
            // (QEMU reads a table past the end as zeroes; no image QEMU writes has one.)
            long l1Size = header.L1Size;
            if (header.L1TableOffset > (ulong)length || (ulong)(length - (long)header.L1TableOffset) < (ulong)l1Size * 8)
            {
                throw new ImageFormatException(string.Create(CultureInfo.InvariantCulture,
                    $"Corrupt qcow image '{file.Filename}': the L1 table ({l1Size} entries at offset 0x{header.L1TableOffset:x}) lies past the end of the file"));
            }
            var l1 = new ulong[l1Size];
            if (l1Size > 0)
            {
                var bytes = new byte[l1Size * 8];
                await file.ReadAsync((long)header.L1TableOffset, bytes.AsMemory()).ConfigureAwait(false);
                for (int i = 0; i < l1.Length; i++)
                    l1[i] = BinaryPrimitives.ReadUInt64BigEndian(bytes.AsSpan(i * 8));
            }

            string? backingName = null;
            if (header.BackingFileOffset != 0)
            {
                // As QEMU: the given bytes, as a C string; bytes past the end of the file read as zeroes.
                var name = new byte[header.BackingFileSize];
                if (header.BackingFileOffset < (ulong)length)
                {
                    int available = (int)Math.Min(name.Length, length - (long)header.BackingFileOffset);
                    if (available > 0)
                        await file.ReadAsync((long)header.BackingFileOffset, name.AsMemory(0, available)).ConfigureAwait(false);
                }
                int nul = Array.IndexOf(name, (byte)0);
                backingName = Encoding.UTF8.GetString(name, 0, nul >= 0 ? nul : name.Length);
            }

            var driver = new QcowNodeDriver(context.Node, file, header, l1, cipher, backingName, options.Encrypt?.KeySecret);
            cipher = null;
            if (!options.NoBacking)
            {
                try
                {
                    if (options.Backing != null)
                        await context.OpenChildAsync("backing", options.Backing, ChildRole.Cow, cancellationToken).ConfigureAwait(false);
                    else if (backingName is { Length: > 0 })
                        await context.OpenReferencedImageAsync("backing", backingName, null, ChildRole.Cow, readOnly: true, cancellationToken).ConfigureAwait(false);
                }
                catch (BlockException e)
                {
                    await driver.DisposeAsync().ConfigureAwait(false);
                    throw new BlockException(e.Errno, "Could not open backing file: " + e.Message, e);
                }
            }
            return driver;
        }
        finally
        {
            cipher?.Dispose();
        }
    }

    /// <inheritdoc />
    /// <remarks>Whole 512-byte sectors, as QEMU asks: the unit of the cipher's IVs, and of a cluster with a backing file.</remarks>
    public override BlockLimits Limits => new() { RequestAlignment = 512, MaxTransfer = 32 << 20 };

    public override long Length => (long)_header.DiskSize;

    public override long? ClusterSize => _clusterSize;

    public override bool? DirtyFlag => false;

    public override bool IsEncrypted => _header.CryptMethod != QcowHeader.CryptNone;

    public override string? BackingFileName => _backingName is { Length: > 0 } name ? name : null;

    public override bool HasZeroInit => Node.Backing is null;

    /// <summary>
    /// The file's name, or with <c>encrypt.key-secret</c> QEMU's <c>json:{…}</c> form: the secret's id is an option the
    /// file name alone cannot carry.
    /// </summary>
    public override string Filename
    {
        get
        {
            string fileName = _file.Filename;
            if (_keySecret is null)
                return fileName;
            JsonNode file = fileName.StartsWith("json:", StringComparison.Ordinal)
                ? JsonNode.Parse(fileName[5..])!
                : new JsonObject { ["driver"] = _file.DriverName, ["filename"] = fileName };
            return "json:" + QemuJson.Compact(new JsonObject { ["driver"] = "qcow", ["file"] = file, ["encrypt.key-secret"] = _keySecret });
        }
    }

    // ---- mapping ----------------------------------------------------------------------------------------------

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int L1Index(long offset) => (int)(offset >> (_clusterBits + _l2Bits));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int L2Index(long offset) => (int)((offset >> _clusterBits) & (_l2Entries - 1));

    private int L2Bytes => _l2Entries * 8;

    /// <summary>The L2 table of <paramref name="l1Index"/>, read from the file on first use; null if the L1 entry is empty.</summary>
    private async ValueTask<ulong[]?> GetL2Async(int l1Index)
    {
        var table = Volatile.Read(ref _l2[l1Index]);
        if (table != null || Volatile.Read(ref _l1[l1Index]) == 0)
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
        if (offset > long.MaxValue || (long)offset > _fileEnd - L2Bytes)
            ThrowBadL1Entry(l1Index, offset);
        if (!_l2ByOffset.TryGetValue(offset, out table))
        {
            var bytes = Node.Graph.Buffers.Rent(L2Bytes);
            try
            {
                var span = bytes.Memory[..L2Bytes];
                await _file.DebugEventAsync(Drivers.Blkdebug.BlkdebugEvent.L2Load).ConfigureAwait(false);
                await _file.ReadAsync((long)offset, span).ConfigureAwait(false);
                table = new ulong[_l2Entries];
                for (int i = 0; i < table.Length; i++)
                    table[i] = BinaryPrimitives.ReadUInt64BigEndian(span.Span[(i * 8)..]);
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

    /// <summary>True for an entry naming a whole plain cluster of the file (QEMU allocates them cluster-aligned).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool IsPlainCluster(ulong entry) =>
        (entry & (CompressedFlag | (ulong)(_clusterSize - 1))) == 0 && entry != 0 && (long)entry <= _file.Length - _clusterSize;

    // ---- read -------------------------------------------------------------------------------------------------

    public override ValueTask ReadAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        long inCluster = offset & (_clusterSize - 1);
        if (inCluster + buffers.Length <= _clusterSize)
        {
            var table = Volatile.Read(ref _l2[L1Index(offset)]);
            if (table != null)
            {
                ulong entry = Volatile.Read(ref table[L2Index(offset)]);
                if (_plain && IsPlainCluster(entry) && !BlockNode.DebugEventsEnabled)
                    return _file.ReadAsync((long)entry + inCluster, buffers);
            }
        }
        return ReadSlowAsync(offset, buffers);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ReadSlowAsync(long offset, IoVector buffers)
    {
        EnsureKey();
        int done = 0;
        while (done < buffers.Length)
        {
            long at = offset + done;
            int n = (int)Math.Min(buffers.Length - done, _clusterSize - (at & (_clusterSize - 1)));
            var table = await GetL2Async(L1Index(at)).ConfigureAwait(false);
            ulong entry = table is null ? 0 : Volatile.Read(ref table[L2Index(at)]);
            await ReadClusterAsync(at, entry, buffers.Slice(done, n)).ConfigureAwait(false);
            done += n;
        }
    }

    /// <summary>Reads <paramref name="buffers"/> at guest <paramref name="offset"/>, inside the one cluster <paramref name="entry"/> maps.</summary>
    private async ValueTask ReadClusterAsync(long offset, ulong entry, IoVector buffers)
    {
        long inCluster = offset & (_clusterSize - 1);
        if (entry == 0)
        {
            if (Node.Backing?.Node is { } backing)
                await BackingReads.ReadAsync(backing, offset, buffers).ConfigureAwait(false);
            else
                buffers.Clear();
            return;
        }
        if ((entry & CompressedFlag) != 0)
        {
            await _lock.WaitAsync().ConfigureAwait(false);
            try
            {
                await InflateLockedAsync(offset, entry).ConfigureAwait(false);
                buffers.CopyFrom(_inflated.AsSpan((int)inCluster, buffers.Length));
            }
            finally
            {
                _lock.Release();
            }
            return;
        }
        if (!IsPlainCluster(entry))
            throw BadL2Entry(offset, entry);
        await _file.DebugEventAsync(Drivers.Blkdebug.BlkdebugEvent.ReadAio).ConfigureAwait(false);
        if (_cipher is null)
        {
            await _file.ReadAsync((long)entry + inCluster, buffers).ConfigureAwait(false);
            return;
        }
        ulong sector = (ulong)offset / SectorCipher.SectorSize;
        if (SectorCipher.IsSectorAligned(buffers))
        {
            await _file.ReadAsync((long)entry + inCluster, buffers).ConfigureAwait(false);
            _cipher.Decrypt(buffers, sector);
            return;
        }
        var bounce = Node.Graph.Buffers.Rent(buffers.Length);
        try
        {
            var memory = bounce.Memory[..buffers.Length];
            await _file.ReadAsync((long)entry + inCluster, memory).ConfigureAwait(false);
            _cipher.Decrypt(memory.Span, sector);
            buffers.CopyFrom(memory.Span);
        }
        finally
        {
            bounce.Return(clear: true);
        }
    }

    /// <summary>
    /// Under <see cref="_lock"/>: inflates the compressed cluster <paramref name="entry"/> names into
    /// <see cref="_inflated"/>. Its raw deflate data must give the whole cluster, as QEMU asks.
    /// </summary>
    private async ValueTask InflateLockedAsync(long guestOffset, ulong entry)
    {
        if (_inflatedEntry == entry)
            return;
        int sizeShift = 63 - _clusterBits;
        long compressedBytes = (long)((entry >> sizeShift) & (ulong)(_clusterSize - 1));
        long at = (long)(entry & ((1UL << sizeShift) - 1));
        // Bytes past the end of the file read as zeroes, as in QEMU; the read itself stays inside the file.
        var compressed = new byte[compressedBytes];
        long available = Math.Clamp(_file.Length - at, 0, compressedBytes);
        if (available > 0)
            await _file.ReadAsync(at, compressed.AsMemory(0, (int)available)).ConfigureAwait(false);
        _inflatedEntry = 0;
        int total = 0;
        try
        {
            using var inflater = new DeflateStream(new MemoryStream(compressed), CompressionMode.Decompress);
            int n;
            while (total < _inflated.Length && (n = inflater.Read(_inflated, total, _inflated.Length - total)) > 0)
                total += n;
        }
        catch (Exception e) when (e is InvalidDataException or IOException)
        {
            total = -1;
        }
        if (total != _inflated.Length)
        {
            throw new ImageFormatException(string.Create(CultureInfo.InvariantCulture,
                $"Corrupt qcow image '{_file.Filename}': the compressed cluster for guest offset 0x{guestOffset & ~(_clusterSize - 1):x} ({compressedBytes} bytes at 0x{at:x}) does not inflate to {_clusterSize} bytes"), Errno.EIO);
        }
        _inflatedEntry = entry;
    }

    // ---- block status -----------------------------------------------------------------------------------------

    /// <inheritdoc />
    /// <remarks>
    /// As QEMU: plain clusters are data at their offset; compressed clusters, and every cluster of an encrypted image,
    /// are data without an offset (the file's bytes are not the guest's). Runs of clusters alike are one answer.
    /// </remarks>
    public override async ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length, bool wantZero)
    {
        var table = await GetL2Async(L1Index(offset)).ConfigureAwait(false);
        long inCluster = offset & (_clusterSize - 1);
        if (table is null)
        {
            long tableSpan = (long)_l2Entries << _clusterBits;
            return new BlockStatus(BlockStatusFlags.None, Math.Min(length, tableSpan - (offset & (tableSpan - 1))));
        }
        int index = L2Index(offset);
        ulong entry = Volatile.Read(ref table[index]);
        long bytes = Math.Min(length, _clusterSize - inCluster);
        if (entry == 0)
        {
            while (bytes < length && index + 1 < _l2Entries && Volatile.Read(ref table[index + 1]) == 0)
            {
                index++;
                bytes = Math.Min(length, bytes + _clusterSize);
            }
            return new BlockStatus(BlockStatusFlags.None, bytes);
        }
        if ((entry & CompressedFlag) != 0 || !_plain)
            return new BlockStatus(BlockStatusFlags.Data, bytes);
        if (!IsPlainCluster(entry))
            throw BadL2Entry(offset, entry);
        while (bytes < length && index + 1 < _l2Entries && Volatile.Read(ref table[index + 1]) == entry + (ulong)(bytes + inCluster)
            && IsPlainCluster(entry + (ulong)(bytes + inCluster)))
        {
            index++;
            bytes = Math.Min(length, bytes + _clusterSize);
        }
        return new BlockStatus(BlockStatusFlags.Data | BlockStatusFlags.OffsetValid, bytes, (long)entry + inCluster, _file);
    }

    /// <inheritdoc />
    public override bool CanMakeEmpty => true;

    /// <inheritdoc />
    /// <remarks>As QEMU's <c>qcow_make_empty</c>: the L1 table zeroed, and the file cut right after it.</remarks>
    public override async ValueTask MakeEmptyAsync()
    {
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            Array.Clear(_l1);
            Array.Clear(_l2);
            _l2ByOffset.Clear();
            _inflatedEntry = 0;
            long l1Bytes = _l1.LongLength * 8;
            await _file.WriteZeroesAsync((long)_header.L1TableOffset, l1Bytes).ConfigureAwait(false);
            await _file.FlushAsync().ConfigureAwait(false);
            await _file.TruncateAsync((long)_header.L1TableOffset + l1Bytes, PreallocMode.Off, exact: true).ConfigureAwait(false);
            _fileEnd = _file.Length;
        }
        finally
        {
            _lock.Release();
        }
    }

    public override async ValueTask DisposeAsync()
    {
        _lock.Dispose();
        _cipher?.Dispose();
        await base.DisposeAsync().ConfigureAwait(false);
    }

    // ---- errors -----------------------------------------------------------------------------------------------

    /// <summary>Refuses data I/O on an encrypted image opened for metadata only.</summary>
    private void EnsureKey()
    {
        if (!_plain && _cipher is null)
            ThrowKeyMissing();
    }

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowKeyMissing() =>
        throw new BlockException(Errno.EIO, "The encrypted qcow image was opened without its key; reading or writing data needs encrypt.key-secret");

    private ImageFormatException BadL2Entry(long guestOffset, ulong entry) =>
        new(string.Create(CultureInfo.InvariantCulture,
            $"Corrupt qcow image '{_file.Filename}': the L2 entry for guest offset 0x{guestOffset & ~(_clusterSize - 1):x} names cluster offset 0x{entry:x}, which is not a cluster of the file"), Errno.EIO);

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowBadL1Entry(int l1Index, ulong offset) =>
        throw new ImageFormatException(string.Create(CultureInfo.InvariantCulture,
            $"Corrupt qcow image '{_file.Filename}': L1 entry {l1Index} names L2 table offset 0x{offset:x}, which is not a table of the file"), Errno.EIO);
}
