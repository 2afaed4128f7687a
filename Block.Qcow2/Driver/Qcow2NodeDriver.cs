using Block.Drivers.Blkdebug;
using System.Buffers.Binary;
using System.Text.Json.Nodes;
using Block.Drivers;
using Block.Events;
using Block.Graph;
using Block.Qapi;
using Block.Qcow2.Encryption;
using Block.Qcow2.Format;
using Block.Qcow2.Metadata;

namespace Block.Qcow2.Driver;

/// <summary>
/// One open qcow2 image: the L1 table in memory, L2 slices and refcount blocks in write-back caches, and the
/// read, write, zero, discard, status and resize paths over them.
/// </summary>
/// <remarks>
/// <para>Metadata changes take <see cref="_lock"/>; data I/O never does. A read of an allocated cluster whose L2 slice
/// is cached takes no lock at all. An allocating write registers its guest range as in flight, copies and writes
/// the data outside the lock, then links the new clusters into L2 under the lock; later writes meeting the range wait
/// for it, reads do not (they see the old mapping until the new one is complete).</para>
/// <para>Write ordering (DESIGN §5) is enforced by cache dependencies, so that a crash leaves leaks at worst.</para>
/// </remarks>
internal sealed partial class Qcow2NodeDriver : NodeDriver
{
    private readonly BlockNode _file;
    private readonly Qcow2Header _header;
    private readonly SemaphoreSlim _lock = new(1, 1);
    private readonly List<InFlightAllocation> _inFlight = [];
    private readonly MetadataCache _l2Cache;
    private readonly int _sliceEntries;
    private readonly int _sliceBytes;
    private readonly bool _readOnly;
    private readonly Qcow2OverlapFlags _overlapFlags;
    private readonly HashSet<long> _activeL2 = [];
    private readonly bool _passDiscardRequest;
    private readonly bool _passDiscardSnapshot;
    private readonly bool _passDiscardOther;
    private readonly Timer? _cleanTimer;
    private readonly Qcow2Encryption? _encryption;
    private Qcow2Layout _layout;
    private RefcountManager _refcounts;
    private BlockNode _data;
    private bool _hasDataFile;
    private ulong[] _l1;
    private List<Qcow2Snapshot> _snapshots;
    private long _snapshotTableLength;
    private long _size;
    private bool _lazyRefcounts;
    private bool _dirtyOnDisk;
    private volatile bool _corrupt;
    private bool _corruptionSignaled;
    private long _cleanTick;

    private Qcow2NodeDriver(BlockNode node, BlockNode file, Qcow2Header header, Qcow2Layout layout, ulong[] l1, ulong[] refTable,
        List<Qcow2Snapshot> snapshots, long snapshotTableLength, BlockdevOptionsQcow2 options, Qcow2CacheSizes cache, Qcow2Encryption? encryption)
        : base(node)
    {
        _file = file;
        _encryption = encryption;
        _data = file;
        _header = header;
        _layout = layout;
        _l1 = l1;
        _snapshots = snapshots;
        _snapshotTableLength = snapshotTableLength;
        _size = (long)header.Size;
        _readOnly = node.ReadOnly;
        _overlapFlags = _readOnly ? Qcow2OverlapFlags.None : (options.OverlapCheck ?? new Qcow2OverlapChecks()).Resolve();
        _lazyRefcounts = options.LazyRefcounts ?? (header.Compatible & CompatibleFeatures.LazyRefcounts) != 0;
        _dirtyOnDisk = (header.Incompatible & IncompatibleFeatures.Dirty) != 0;
        _passDiscardRequest = options.PassDiscardRequest ?? true;
        _passDiscardSnapshot = options.PassDiscardSnapshot ?? true;
        _passDiscardOther = options.PassDiscardOther ?? false;

        _sliceBytes = (int)cache.L2EntryBytes;
        _sliceEntries = _sliceBytes / layout.L2EntrySize;
        _l2Cache = new MetadataCache(node, file, "L2", _sliceBytes, (int)Math.Max(2, cache.L2Bytes / _sliceBytes),
            (offset, length) => CheckOverlapAsync(offset, length, Qcow2OverlapFlags.ActiveL2 | Qcow2OverlapFlags.InactiveL2))
        {
            LoadEvent = BlkdebugEvent.L2Load,
            WriteEvent = BlkdebugEvent.L2Update,
        };
        _refcounts = NewRefcountManager(layout, refTable, (long)header.RefcountTableOffset, (int)header.RefcountTableClusters,
            (int)Math.Max(4, cache.RefcountBytes / layout.ClusterSize));
        foreach (var e in l1)
        {
            if ((e & Qcow2Layout.OffsetMask) != 0)
                _activeL2.Add((long)(e & Qcow2Layout.OffsetMask));
        }
        if (cache.CleanIntervalSeconds > 0)
        {
            var period = TimeSpan.FromSeconds(cache.CleanIntervalSeconds);
            _cleanTimer = new Timer(_ => _ = CleanCachesAsync(), null, period, period);
        }
    }

    /// <summary>The refcount table and blocks of <paramref name="layout"/>'s width, with a block cache of <paramref name="cacheEntries"/> clusters.</summary>
    private RefcountManager NewRefcountManager(Qcow2Layout layout, ulong[] table, long tableOffset, int tableClusters, int cacheEntries)
    {
        var blocks = new MetadataCache(Node, _file, "refcount", layout.ClusterSize, cacheEntries,
            (offset, length) => CheckOverlapAsync(offset, length, Qcow2OverlapFlags.RefcountBlock))
        {
            WriteEvent = BlkdebugEvent.RefblockUpdatePart,
        };
        return new RefcountManager(layout, _file, blocks, table, tableOffset, tableClusters, CheckOverlapAsync, WriteRefcountTableHeaderAsync)
        {
            MetadataChanged = RefreshMetadataMap,
            PassDiscard = reason => reason switch
            {
                DiscardReason.Always => true,
                DiscardReason.Request => _passDiscardRequest,
                DiscardReason.Snapshot => _passDiscardSnapshot,
                DiscardReason.Other => _passDiscardOther,
                _ => false,
            },
        };
    }

    /// <summary>The image's geometry.</summary>
    public Qcow2Layout Layout => _layout;

    /// <summary>The header as last written.</summary>
    public Qcow2Header Header => _header;

    /// <inheritdoc />
    public override long Length => _size;

    /// <inheritdoc />
    /// <remarks>Encrypted images take whole 512-byte sectors, the unit of their IVs; the request path pads the rest.</remarks>
    public override BlockLimits Limits => new()
    {
        RequestAlignment = _encryption is null ? 1 : Sector,
        DiscardAlignment = _layout.ClusterSize,
    };

    /// <inheritdoc />
    public override bool IsEncrypted => _encryption != null;

    /// <inheritdoc />
    public override bool IsKeyMissing => _encryption is { KeyMissing: true };

    /// <inheritdoc />
    /// <remarks>Legacy AES only: its key is the password itself. A LUKS image's passphrase only opens it.</remarks>
    public override void SetKey(string password)
    {
        if (_encryption is null)
            throw new BlockException(Errno.EINVAL, "Password incorrect");
        _encryption.SetLegacyKey(password);
    }

    /// <inheritdoc />
    /// <remarks>As QEMU answers: an image without preallocated L2 tables reads as zeroes wherever nothing was written
    /// (encrypted or not); an encrypted preallocated one does not, its zeroed clusters decrypting to noise.</remarks>
    public override bool HasZeroInit => _encryption is null || _l1.Length == 0 || _l1[0] == 0;

    /// <summary>
    /// The file's name, or with <c>encrypt.key-secret</c> QEMU's <c>json:{…}</c> form: the secret's id is an option the
    /// file name alone cannot carry.
    /// </summary>
    public override string Filename
    {
        get
        {
            string fileName = _file.Filename;
            if (((BlockdevOptionsQcow2)Node.Options).Encrypt?.KeySecret is not { } secret)
                return fileName.StartsWith("json:", StringComparison.Ordinal) ? base.Filename : fileName;
            JsonNode file = fileName.StartsWith("json:", StringComparison.Ordinal)
                ? JsonNode.Parse(fileName[5..])!
                : new JsonObject { ["driver"] = _file.DriverName, ["filename"] = fileName };
            return "json:" + QemuJson.Compact(new JsonObject { ["driver"] = "qcow2", ["file"] = file, ["encrypt.key-secret"] = secret });
        }
    }

    /// <inheritdoc />
    public override RequestFlags SupportedWriteFlags => RequestFlags.Compressed;

    /// <inheritdoc />
    public override RequestFlags SupportedZeroFlags => RequestFlags.MayUnmap | RequestFlags.NoFallback;

    /// <inheritdoc />
    public override long? ClusterSize => _layout.ClusterSize;

    /// <inheritdoc />
    public override bool? DirtyFlag => _dirtyOnDisk;

    /// <inheritdoc />
    public override string? BackingFileName => _header.BackingFile is { Length: > 0 } name ? name : null;

    /// <inheritdoc />
    public override string? BackingFileFormat => _header.BackingFile is "" ? null : _header.BackingFormat;

    /// <inheritdoc />
    public override long VmStateOffset => (long)_layout.L1EntriesFor(_size) * _layout.L2Coverage;

    /// <inheritdoc />
    public override ImageInfoSpecific SpecificInfo => new ImageInfoSpecificQcow2
    {
        Compat = _header.Version >= 3 ? "1.1" : "0.10",
        DataFile = _header.DataFile,
        DataFileRaw = _header.DataFile != null ? (_header.Autoclear & AutoclearFeatures.DataFileRaw) != 0 : null,
        ExtendedL2 = _header.Version >= 3 ? _layout.ExtendedL2 : null,
        LazyRefcounts = _header.Version >= 3 ? (_header.Compatible & CompatibleFeatures.LazyRefcounts) != 0 : null,
        Corrupt = _header.Version >= 3 ? (_header.Incompatible & IncompatibleFeatures.Corrupt) != 0 : null,
        RefcountBits = _layout.RefcountBits,
        Encrypt = _encryption?.Info,
        CompressionType = _header.CompressionType == 1 ? "zstd" : "zlib",
        Bitmaps = BitmapInfoList,
    };

    /// <summary>Opens the image behind <paramref name="context"/>'s node.</summary>
    public static async ValueTask<Qcow2NodeDriver> OpenAsync(NodeOpenContext context, BlockdevOptionsQcow2 options, CancellationToken cancellationToken)
    {
        var node = context.Node;
        var fileChild = await context.OpenChildAsync("file", options.File, ChildRole.Storage, cancellationToken).ConfigureAwait(false);
        var file = fileChild.Node;

        var header = await ReadHeaderAsync(file).ConfigureAwait(false);
        if ((header.Incompatible & IncompatibleFeatures.Corrupt) != 0 && !node.ReadOnly && !options.ForCheck)
            throw new BlockException(Errno.EACCES, "qcow2: Image is corrupt; cannot be opened read/write");
        var layout = new Qcow2Layout(header.ClusterBits, header.ExtendedL2, header.RefcountOrder);

        long fileLength = file.Length;
        // As QEMU: the L1 index of the VM state area past the disk must fit an int (and computing it must not overflow).
        long neededL1 = (long)(header.Size / (ulong)layout.L2Coverage) + (header.Size % (ulong)layout.L2Coverage != 0 ? 1 : 0);
        if (neededL1 > int.MaxValue)
            throw new ImageFormatException("Image is too big");
        if (header.L1Size < neededL1)
            throw new ImageFormatException("L1 table is too small");
        var l1 = await ReadTableAsync(file, (long)header.L1TableOffset, header.L1Size, "L1 table", fileLength).ConfigureAwait(false);
        for (int i = 0; i < l1.Length; i++)
            l1[i] &= ~Qcow2Layout.L1Reserved | Qcow2Layout.Copied;
        long refEntries = (long)header.RefcountTableClusters * layout.ClusterSize / 8;
        if (header.RefcountTableClusters == 0)
            throw new ImageFormatException("Image does not contain a reference count table");
        await file.DebugEventAsync(BlkdebugEvent.ReftableLoad).ConfigureAwait(false);
        var refTable = await ReadTableAsync(file, (long)header.RefcountTableOffset, refEntries, "reference count table", fileLength).ConfigureAwait(false);

        var (snapshots, snapshotLength) = (new List<Qcow2Snapshot>(), 0L);
        if (header.NbSnapshots > 0)
            (snapshots, snapshotLength) = await ReadSnapshotsAsync(file, header, fileLength).ConfigureAwait(false);

        var cache = Qcow2CacheSizes.Resolve(options, (long)header.Size, layout.ClusterSize, layout.L2EntrySize);
        var encryption = await Qcow2Encryption.OpenAsync(header, file, options.Encrypt, context.Graph.Secrets, options.NoIo, options.KeyLater, cancellationToken).ConfigureAwait(false);
        try
        {
            return await FinishOpenAsync(context, options, header, new Qcow2NodeDriver(node, file, header, layout, l1, refTable, snapshots, snapshotLength, options, cache, encryption),
                cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            encryption?.Dispose();
            throw;
        }
    }

    /// <summary>Opens the backing and data file children and prepares a writable image for its first write.</summary>
    private static async ValueTask<Qcow2NodeDriver> FinishOpenAsync(NodeOpenContext context, BlockdevOptionsQcow2 options, Qcow2Header header,
        Qcow2NodeDriver driver, CancellationToken cancellationToken)
    {
        var node = context.Node;
        await driver.LoadBitmapsAsync().ConfigureAwait(false);

        if (!options.NoBacking)
        {
            try
            {
                if (options.Backing != null)
                    await context.OpenChildAsync("backing", options.Backing, ChildRole.Cow, cancellationToken).ConfigureAwait(false);
                else if (header.BackingFile is { Length: > 0 } backing)
                    await context.OpenReferencedImageAsync("backing", backing, header.BackingFormat, ChildRole.Cow, readOnly: true, cancellationToken).ConfigureAwait(false);
            }
            catch (BlockException e)
            {
                throw new BlockException(e.Errno, "Could not open backing file: " + e.Message, e);
            }
        }
        if ((header.Incompatible & IncompatibleFeatures.ExternalDataFile) != 0)
        {
            BlockChild dataChild;
            if (options.DataFile != null)
                dataChild = await context.OpenChildAsync("data-file", options.DataFile, ChildRole.Data, cancellationToken).ConfigureAwait(false);
            else if (header.DataFile is { Length: > 0 } dataName)
                dataChild = await context.OpenReferencedImageAsync("data-file", dataName, "file", ChildRole.Data, readOnly: node.ReadOnly, cancellationToken).ConfigureAwait(false);
            else
                throw new BlockException(Errno.EINVAL, "'data-file' is required for this image");
            driver._data = dataChild.Node;
            driver._hasDataFile = true;
            driver._l2Cache.FlushData = driver.FlushDataAndFileAsync;
        }
        else if (options.DataFile != null)
        {
            throw new BlockOptionsException("'data-file' can only be set for images with an external data file");
        }

        if (!node.ReadOnly)
        {
            // Arm the overlap checks before anything is written, the header rewrite below included.
            await driver.LoadInactiveL2Async().ConfigureAwait(false);
            driver.RefreshMetadataMap();
            // Opened to be checked: the check sees (and repairs) a dirty image as it is. The bitmaps are still
            // marked in use in place, as QEMU does for every read-write open, so the directory QEMU frees on close
            // holds the same bytes in both tools' images.
            await driver.PrepareForWritingAsync(repairDirty: !options.ForCheck).ConfigureAwait(false);
        }
        return driver;
    }

    private static async ValueTask<Qcow2Header> ReadHeaderAsync(BlockNode file)
    {
        long length = file.Length;
        var first = new byte[(int)Math.Min(length, 4096)];
        if (first.Length > 0)
            await file.ReadAsync(0, first.AsMemory()).ConfigureAwait(false);
        if (first.Length < 104 || BinaryPrimitives.ReadUInt32BigEndian(first) != Qcow2Header.Magic)
            throw new ImageFormatException("Image is not in qcow2 format");
        uint clusterBits = BinaryPrimitives.ReadUInt32BigEndian(first.AsSpan(20));
        if (clusterBits < 9 || clusterBits > 21)
            throw new ImageFormatException($"Unsupported cluster size: 2^{clusterBits}");
        int headerBytes = (int)Math.Min(length, 1L << (int)clusterBits);
        var cluster = new byte[headerBytes];
        await file.ReadAsync(0, cluster.AsMemory()).ConfigureAwait(false);
        return Qcow2Header.Parse(cluster);
    }

    private static async ValueTask<ulong[]> ReadTableAsync(BlockNode file, long offset, long entries, string what, long fileLength)
    {
        if (entries == 0)
            return [];
        long bytes = entries * 8;
        if (offset <= 0 || offset > fileLength || bytes > fileLength - offset)
            throw new ImageFormatException($"Invalid {what} offset: {offset} + {bytes} bytes lies outside the image file ({fileLength} bytes)");
        var raw = new byte[bytes];
        await file.ReadAsync(offset, raw.AsMemory()).ConfigureAwait(false);
        var table = new ulong[entries];
        for (long i = 0; i < entries; i++)
            table[i] = BinaryPrimitives.ReadUInt64BigEndian(raw.AsSpan((int)(i * 8)));
        return table;
    }

    private static async ValueTask<(List<Qcow2Snapshot>, long)> ReadSnapshotsAsync(BlockNode file, Qcow2Header header, long fileLength)
    {
        // Bound the table before reading it: at most 65536 entries of at most 40 + 1024 + 2 × 65535 bytes, and
        // QEMU's 64 MiB overall limit.
        long max = Math.Min(64L << 20, Math.Max(0, fileLength - (long)header.SnapshotsOffset));
        if ((long)header.SnapshotsOffset >= fileLength)
            throw new ImageFormatException("Snapshot table offset invalid");
        var table = new byte[max];
        await file.ReadAsync((long)header.SnapshotsOffset, table.AsMemory()).ConfigureAwait(false);
        return Qcow2Snapshot.ParseTable(table, header.NbSnapshots);
    }

    /// <summary>
    /// Before the first write: clear autoclear bits Block does not maintain, repair refcounts left stale by lazy
    /// refcounts (the dirty bit), and mark the stored bitmaps in use, as QEMU does on a read-write open.
    /// </summary>
    /// <param name="repairDirty">False when the image is opened to be checked: the check itself reports and repairs
    /// what lazy refcounts left behind.</param>
    private async ValueTask PrepareForWritingAsync(bool repairDirty)
    {
        bool rewrite = PrepareBitmapsHeaderForWriting();
        var keep = AutoclearFeatures.DataFileRaw | AutoclearFeatures.Bitmaps;
        if ((_header.Autoclear & ~keep) != 0)
        {
            _header.Autoclear &= keep;
            rewrite = true;
        }
        if (_dirtyOnDisk && repairDirty)
        {
            await RebuildRefcountsAsync().ConfigureAwait(false);
            _header.Incompatible &= ~IncompatibleFeatures.Dirty;
            _dirtyOnDisk = false;
            rewrite = true;
        }
        if (rewrite)
            await WriteHeaderAsync().ConfigureAwait(false);
        await MarkBitmapsInUseAsync().ConfigureAwait(false);
    }

    /// <summary>Writes the header cluster (header and extensions) and syncs it.</summary>
    private async ValueTask WriteHeaderAsync()
    {
        // The whole header cluster, as QEMU writes it: nothing of an older, longer header survives.
        var cluster = new byte[_layout.ClusterSize];
        _header.Write(cluster);
        await _file.WriteAsync(0, cluster.AsMemory()).ConfigureAwait(false);
        await _file.FlushAsync().ConfigureAwait(false);
    }

    /// <summary>Switches the header to a new refcount table: offset and size in one 12-byte write, synced.</summary>
    private async ValueTask WriteRefcountTableHeaderAsync(ulong offset, uint clusters)
    {
        var fields = new byte[12];
        BinaryPrimitives.WriteUInt64BigEndian(fields, offset);
        BinaryPrimitives.WriteUInt32BigEndian(fields.AsSpan(8), clusters);
        await _file.WriteAsync(48, fields.AsMemory()).ConfigureAwait(false);
        await _file.FlushAsync().ConfigureAwait(false);
        _header.RefcountTableOffset = offset;
        _header.RefcountTableClusters = clusters;
    }

    /// <summary>Marks the image dirty on disk before the first allocation under lazy refcounts.</summary>
    private async ValueTask MarkDirtyAsync()
    {
        if (_dirtyOnDisk)
            return;
        await _refcounts.Blocks.FlushAsync().ConfigureAwait(false);
        _header.Incompatible |= IncompatibleFeatures.Dirty;
        await WriteHeaderAsync().ConfigureAwait(false);
        _dirtyOnDisk = true;
    }

    /// <summary>Throws EIO if the image was marked corrupt while open.</summary>
    private void ThrowIfCorrupt()
    {
        if (_corrupt)
            throw new BlockException(Errno.EIO, "qcow2: the image is corrupt; further I/O is refused");
    }

    /// <summary>
    /// Marks the image corrupt: sets the corrupt bit (when writable), raises <c>BLOCK_IMAGE_CORRUPTED</c>, and makes
    /// every later request fail. On a read-only image the corruption is only reported.
    /// </summary>
    /// <remarks>As QEMU, only the first report is printed and raised, except that a fatal one still follows
    /// non-fatal ones.</remarks>
    internal async ValueTask<BlockException> SignalCorruptionAsync(string message, long? offset, long? size)
    {
        bool fatal = !_readOnly;
        if (!_corruptionSignaled || (fatal && !_corrupt))
        {
            _corruptionSignaled = true;
            Node.Graph.Print(fatal
                ? $"qcow2: Marking image as corrupt: {message}; further corruption events will be suppressed\n"
                : $"qcow2: Image is corrupt: {message}; further non-fatal corruption events will be suppressed\n");
            Node.Graph.RaiseEvent(new BlockImageCorruptedEvent(string.Empty, Node.NodeName, message, offset, size, fatal));
            if (fatal)
            {
                _corrupt = true;
                _header.Incompatible |= IncompatibleFeatures.Corrupt;
                try
                {
                    await WriteHeaderAsync().ConfigureAwait(false);
                }
                catch (BlockException)
                {
                    // The image is unusable either way; the event and the failed request report it.
                }
            }
        }
        return new BlockException(Errno.EIO, message);
    }

    /// <inheritdoc />
    public override async ValueTask FlushToOsAsync()
    {
        if (_readOnly)
            return;
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            await FlushMetadataLockedAsync().ConfigureAwait(false);
        }
        finally
        {
            _lock.Release();
        }
    }

    private async ValueTask FlushMetadataLockedAsync()
    {
        await _l2Cache.WriteAllAsync().ConfigureAwait(false);
        await _refcounts.Blocks.WriteAllAsync().ConfigureAwait(false);
        await _file.FlushAsync().ConfigureAwait(false);
        if (!ReferenceEquals(_data, _file))
            await _data.FlushAsync().ConfigureAwait(false);
        await _refcounts.AfterFlushAsync().ConfigureAwait(false);
    }

    private async ValueTask FlushDataAndFileAsync()
    {
        await _data.FlushAsync().ConfigureAwait(false);
        await _file.FlushAsync().ConfigureAwait(false);
    }

    private async Task CleanCachesAsync()
    {
        if (!await _lock.WaitAsync(0).ConfigureAwait(false))
            return;
        try
        {
            _cleanTick = _l2Cache.DropIdle(_cleanTick);
            _refcounts.Blocks.DropIdle(_cleanTick);
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <inheritdoc />
    public override async ValueTask DisposeAsync()
    {
        if (_cleanTimer != null)
            await _cleanTimer.DisposeAsync().ConfigureAwait(false);
        List<string>? failures = null;
        var errno = Errno.EIO;
        if (!_readOnly && !_corrupt)
        {
            await _lock.WaitAsync().ConfigureAwait(false);
            try
            {
                // As QEMU's close: each cache is flushed even if the other fails, and each failure is named.
                foreach (var (cache, what) in new[] { (_l2Cache, "L2 table"), (_refcounts.Blocks, "refcount block") })
                {
                    try
                    {
                        await cache.FlushAsync().ConfigureAwait(false);
                    }
                    catch (BlockException e)
                    {
                        errno = e.Errno;
                        (failures ??= []).Add($"Failed to flush the {what} cache: {ErrnoText.Describe(e.Errno)}");
                    }
                }
            }
            finally
            {
                _lock.Release();
            }
        }
        if (!_readOnly && !_corrupt && failures is null)
        {
            await _lock.WaitAsync().ConfigureAwait(false);
            try
            {
                await FlushMetadataLockedAsync().ConfigureAwait(false);
                await StoreBitmapsOnCloseAsync().ConfigureAwait(false);
                if (_dirtyOnDisk)
                {
                    // A clean close: refcounts are on disk, so the image is consistent again.
                    _header.Incompatible &= ~IncompatibleFeatures.Dirty;
                    await WriteHeaderAsync().ConfigureAwait(false);
                    _dirtyOnDisk = false;
                }
            }
            finally
            {
                _lock.Release();
            }
        }
        _encryption?.Dispose();
        await base.DisposeAsync().ConfigureAwait(false);
        if (failures != null)
            throw new BlockException(errno, string.Join('\n', failures));
    }

    /// <summary>A guest range whose clusters are being allocated; later writes to it wait.</summary>
    /// <remarks>Reused with its write step (see <see cref="RentStep"/>), so all of it is touched only under the lock: the
    /// task to wait on is made only when someone waits, and a waiter keeps that task, never the object.</remarks>
    private sealed class InFlightAllocation
    {
        private TaskCompletionSource? _done;

        public InFlightAllocation()
        {
        }

        public InFlightAllocation(long start, long end) => Reset(start, end);

        public long Start { get; private set; }

        public long End { get; private set; }

        /// <summary>Under the lock: starts a new use for <c>[start, end)</c>.</summary>
        public void Reset(long start, long end)
        {
            Start = start;
            End = end;
            _done = null;
        }

        /// <summary>Under the lock: a task that completes when this allocation is finished; await it after releasing the lock.</summary>
        public Task WhenDone() => (_done ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;

        /// <summary>Under the lock: wakes the waiters.</summary>
        public void Finish()
        {
            _done?.TrySetResult();
            _done = null;
        }
    }
}
