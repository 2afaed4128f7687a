using System.Buffers.Binary;
using System.Text;
using Block.Bitmaps;
using Block.Graph;
using Block.Qcow2.Bitmaps;
using Block.Qcow2.Format;
using Block.Qcow2.Metadata;

namespace Block.Qcow2.Driver;

/// <summary>
/// Persistent dirty bitmaps: the bitmaps extension, the bitmap directory, bitmap tables and data clusters.
/// </summary>
/// <remarks>
/// <para>At open every stored bitmap becomes a <see cref="DirtyBitmap"/> of the node; consistent ones get their bits,
/// ones found in use (a writer crashed) are attached as inconsistent and keep their clusters untouched. A read-write
/// open then marks every bitmap in use in the directory (in place, synced before any guest write), so that a crash
/// leaves them flagged stale; a clean close writes every consistent persistent bitmap to new clusters, then a new
/// directory, switches the header to it, and only then frees the old directory and tables. A crash at any point leaves
/// either the old directory (bitmaps in use) or the new one, and leaked clusters at worst.</para>
/// <para>A bitmaps extension whose autoclear bit is clear was rewritten by a program that did not maintain it: it is
/// ignored (its clusters are leaks), as QEMU ignores it, and dropped at the first read-write open.</para>
/// </remarks>
internal sealed partial class Qcow2NodeDriver
{
    /// <summary>The bitmap directory as stored (flags included), in order; empty without the extension.</summary>
    private List<Qcow2BitmapEntry> _bitmapDirectory = [];

    /// <summary>The extension exists but its autoclear bit is clear: it is stale and ignored.</summary>
    private bool _bitmapsIgnored;

    /// <summary>The stored bitmaps as <c>qemu-img info</c> lists them, or null when there are none.</summary>
    private IReadOnlyList<Qcow2BitmapInfo>? BitmapInfoList => _bitmapDirectory.Count == 0 ? null :
        [.. _bitmapDirectory.Select(e => new Qcow2BitmapInfo
        {
            Name = e.Name,
            Granularity = 1L << e.GranularityBits,
            Flags = [.. FlagNames(e.Flags)],
        })];

    private static IEnumerable<string> FlagNames(Qcow2BitmapFlags flags)
    {
        if ((flags & Qcow2BitmapFlags.InUse) != 0)
            yield return "in-use";
        if ((flags & Qcow2BitmapFlags.Auto) != 0)
            yield return "auto";
    }

    /// <summary>
    /// Reads the bitmaps extension and directory and attaches the stored bitmaps to the node; consistent ones with
    /// their bits. Refuses malformed extensions, directories and tables with QEMU's messages.
    /// </summary>
    private async ValueTask LoadBitmapsAsync()
    {
        if (_header.BitmapsExtension is not { } ext)
            return;
        if ((_header.Autoclear & AutoclearFeatures.Bitmaps) == 0)
        {
            Node.Graph.Warn("a program lacking bitmap support modified this file, so all bitmaps are now considered inconsistent");
            // QEMU ends this hint without a line end; the next output continues its line.
            Node.Graph.Print("Some clusters may be leaked, run 'qemu-img check -r' on the image file to fix.");
            _bitmapsIgnored = true;
            return;
        }
        var (count, size, offset) = Qcow2BitmapDirectory.ParseExtension(ext, _layout.ClusterSize);
        var directory = new byte[size];
        await ReadPastEndAsZeroesAsync(offset, directory).ConfigureAwait(false);
        var entries = Qcow2BitmapDirectory.Parse(directory, count, _layout.ClusterSize, _size);

        var bitmaps = new List<DirtyBitmap>(entries.Count);
        foreach (var entry in entries)
        {
            var bitmap = new DirtyBitmap(entry.Name, _size, 1L << entry.GranularityBits)
            {
                Persistent = true,
                Inconsistent = entry.InUse,
                Enabled = (entry.Flags & Qcow2BitmapFlags.Auto) != 0,
                ReadOnly = _readOnly,
            };
            // The bits of a bitmap in use cannot be trusted: QEMU does not even read its table.
            if (!entry.InUse)
                await ReadBitmapDataAsync(entry, bitmap).ConfigureAwait(false);
            bitmaps.Add(bitmap);
        }
        foreach (var bitmap in bitmaps)
        {
            if (Node.FindDirtyBitmap(bitmap.Name!) != null)
                throw new ImageFormatException($"Bitmap already exists: {bitmap.Name}");
            Node.AttachDirtyBitmap(bitmap);
        }
        _bitmapDirectory = entries;
    }

    private async ValueTask ReadBitmapDataAsync(Qcow2BitmapEntry entry, DirtyBitmap bitmap)
    {
        int cs = _layout.ClusterSize;
        long dataSize = bitmap.SerializedLength;
        // The table must be exactly as large as the disk needs; checked before reading it, which bounds the read.
        if (entry.TableSize != Qcow2BitmapDirectory.TableSizeFor(dataSize, cs))
            throw new ImageFormatException($"Could not read bitmap '{entry.Name}' from image: Invalid argument");
        // Offsets of 2^63 and more cannot be read at all (QEMU's read fails with EIO).
        if (entry.TableOffset < 0)
            throw new ImageFormatException($"Could not read bitmap_table table from image for bitmap '{entry.Name}': Input/output error", Errno.EIO);
        var table = await ReadBitmapTableAsync(entry).ConfigureAwait(false);
        if (Array.Exists(table, e => !Qcow2BitmapDirectory.IsValidTableEntry(e, cs)))
            throw new ImageFormatException($"Could not read bitmap_table table from image for bitmap '{entry.Name}': Invalid argument");
        var cluster = new byte[cs];
        for (int i = 0; i < table.Length; i++)
        {
            long at = (long)i * cs;
            int bytes = (int)Math.Min(cs, dataSize - at);
            long host = (long)(table[i] & Qcow2BitmapDirectory.TableOffsetMask);
            if (host == 0)
            {
                if ((table[i] & Qcow2BitmapDirectory.AllOnes) != 0)
                    bitmap.DeserializeOnes(at, bytes);
                continue;
            }
            await ReadPastEndAsZeroesAsync(host, cluster.AsMemory(0, bytes)).ConfigureAwait(false);
            bitmap.Deserialize(at, cluster.AsSpan(0, bytes));
        }
    }

    private async ValueTask<ulong[]> ReadBitmapTableAsync(Qcow2BitmapEntry entry)
    {
        var raw = new byte[entry.TableSize * 8L];
        await ReadPastEndAsZeroesAsync(entry.TableOffset, raw).ConfigureAwait(false);
        var table = new ulong[entry.TableSize];
        for (int i = 0; i < table.Length; i++)
            table[i] = BinaryPrimitives.ReadUInt64BigEndian(raw.AsSpan(i * 8));
        return table;
    }

    /// <summary>Reads from the image file; what lies past its end reads as zeroes (as QEMU's file driver returns it).</summary>
    private async ValueTask ReadPastEndAsZeroesAsync(long offset, Memory<byte> buffer)
    {
        buffer.Span.Clear();
        if (offset < 0)
            return;
        long available = Math.Clamp(_file.Length - offset, 0, buffer.Length);
        if (available > 0)
            await _file.ReadAsync(offset, buffer[..(int)available]).ConfigureAwait(false);
    }

    /// <summary>
    /// Before the first write: drops an ignored (stale) extension and an autoclear bit without extension. True if the
    /// header must be rewritten.
    /// </summary>
    private bool PrepareBitmapsHeaderForWriting()
    {
        bool rewrite = false;
        if (_bitmapsIgnored)
        {
            _header.BitmapsExtension = null;
            _bitmapsIgnored = false;
            rewrite = true;
        }
        if (_bitmapDirectory.Count == 0 && (_header.Autoclear & AutoclearFeatures.Bitmaps) != 0)
        {
            _header.Autoclear &= ~AutoclearFeatures.Bitmaps;
            rewrite = true;
        }
        return rewrite;
    }

    /// <summary>Marks every stored bitmap in use (the directory rewritten in place and synced) on a read-write open.</summary>
    private async ValueTask MarkBitmapsInUseAsync()
    {
        if (_bitmapDirectory.All(e => e.InUse))
            return;
        var entries = _bitmapDirectory.Select(e => e with { Flags = e.Flags | Qcow2BitmapFlags.InUse }).ToList();
        var bytes = Qcow2BitmapDirectory.Write(entries);
        long offset = (long)BinaryPrimitives.ReadUInt64BigEndian(_header.BitmapsExtension!.AsSpan(16));
        await CheckOverlapAsync(offset, bytes.Length, Qcow2OverlapFlags.BitmapDirectory).ConfigureAwait(false);
        await _file.WriteAsync(offset, bytes.AsMemory()).ConfigureAwait(false);
        await _file.FlushAsync().ConfigureAwait(false);
        _bitmapDirectory = entries;
    }

    /// <inheritdoc />
    public override bool SupportsPersistentDirtyBitmaps => _header.Version >= 3;

    /// <inheritdoc />
    public override async ValueTask CanStoreNewDirtyBitmapAsync(string name, long granularity)
    {
        string? reason;
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            reason = NewBitmapProblem(name, granularity);
        }
        finally
        {
            _lock.Release();
        }
        if (reason != null)
            throw new BlockException(Errno.EINVAL, $"Can't make bitmap '{name}' persistent in '{BlockGraph.DeviceOrNodeName(Node)}': {reason}");
    }

    private string? NewBitmapProblem(string name, long granularity)
    {
        if (_header.Version < 3)
            return "Cannot store dirty bitmaps in qcow2 v2 files";
        int bits = System.Numerics.BitOperations.Log2((ulong)granularity);
        int nameBytes = Encoding.UTF8.GetByteCount(name);
        if (Qcow2BitmapDirectory.ConstraintViolation(bits, nameBytes, _size, _layout.ClusterSize) is { } violation)
            return violation;
        // Bitmaps created since the open count too: all of them must fit when the node closes.
        var pending = Node.DirtyBitmaps.Where(b => b.Persistent && !_bitmapDirectory.Exists(e => e.Name == b.Name)).ToList();
        if (_bitmapDirectory.Count + pending.Count >= Qcow2BitmapDirectory.MaxBitmaps)
            return "Maximum number of persistent bitmaps is already reached";
        long directorySize = _bitmapDirectory.Sum(e => (long)e.EntrySize)
            + pending.Sum(b => (long)Qcow2BitmapEntry.SizeFor(Encoding.UTF8.GetByteCount(b.Name!)))
            + Qcow2BitmapEntry.SizeFor(nameBytes);
        if (directorySize > Qcow2BitmapDirectory.MaxDirectorySize)
            return "Not enough space in the bitmap directory";
        return null;
    }

    /// <inheritdoc />
    public override async ValueTask RemovePersistentDirtyBitmapAsync(string name)
    {
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            ThrowIfCorrupt();
            int index = _bitmapDirectory.FindIndex(e => e.Name == name);
            if (index < 0)
                return; // created since the open and never stored
            var entry = _bitmapDirectory[index];
            var remaining = new List<Qcow2BitmapEntry>(_bitmapDirectory);
            remaining.RemoveAt(index);
            await FlushMetadataLockedAsync().ConfigureAwait(false);
            await WriteBitmapDirectoryAsync(remaining).ConfigureAwait(false);
            // The directory no longer points at the table: its clusters can go.
            await FreeBitmapClustersAsync(entry).ConfigureAwait(false);
            await FlushMetadataLockedAsync().ConfigureAwait(false);
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>Refuses a resize while a stored bitmap is inconsistent (its size could not follow), as QEMU does.</summary>
    private void CheckBitmapsAllowResize()
    {
        if (Node.DirtyBitmaps.FirstOrDefault(b => b.Persistent && b.Inconsistent) is { } bad)
            throw new BlockException(Errno.ENOTSUP,
                $"Bitmap '{bad.Name}' is inconsistent and cannot be used\nTry block-dirty-bitmap-remove to delete this bitmap from disk");
    }

    /// <summary>Stores the bitmaps at a clean close; a failure is reported (the stored copies stay in use) and the close goes on.</summary>
    private async ValueTask StoreBitmapsOnCloseAsync()
    {
        try
        {
            await StoreBitmapsLockedAsync().ConfigureAwait(false);
        }
        catch (BlockException e)
        {
            Node.Graph.Warn($"Lost persistent bitmaps during inactivation of node '{BlockGraph.DeviceOrNodeName(Node)}': {e.Message}");
        }
    }

    /// <summary>
    /// At a clean close (under the lock): writes every consistent persistent bitmap to new clusters, a directory
    /// pointing at them with the in-use flags cleared, and frees the old directory and tables. Inconsistent bitmaps
    /// keep their entries and clusters.
    /// </summary>
    private async ValueTask StoreBitmapsLockedAsync()
    {
        var persistent = Node.DirtyBitmaps.Where(b => b.Persistent && b.Name != null).ToList();
        if (persistent.Count == 0 && _bitmapDirectory.Count == 0)
            return;
        await FlushMetadataLockedAsync().ConfigureAwait(false);
        var entries = new List<Qcow2BitmapEntry>();
        var replaced = new List<Qcow2BitmapEntry>();
        var byName = persistent.ToDictionary(b => b.Name!, StringComparer.Ordinal);
        foreach (var entry in _bitmapDirectory)
        {
            if (!byName.Remove(entry.Name, out var bitmap) || bitmap.Inconsistent)
            {
                entries.Add(entry);
                continue;
            }
            entries.Add(await WriteBitmapAsync(bitmap).ConfigureAwait(false));
            replaced.Add(entry);
        }
        // QEMU keeps a node's bitmaps newest first and appends the ones the image lacks in that order.
        var added = persistent.Where(b => byName.ContainsKey(b.Name!)).Reverse().ToList();
        foreach (var bitmap in added)
            entries.Add(await WriteBitmapAsync(bitmap).ConfigureAwait(false));
        if (replaced.Count == 0 && added.Count == 0)
            return; // only inconsistent bitmaps, whose entries stay as they are
        // Tables, data and their refcounts reach the disk before a directory points at them.
        await FlushMetadataLockedAsync().ConfigureAwait(false);
        await WriteBitmapDirectoryAsync(entries).ConfigureAwait(false);
        foreach (var old in replaced)
            await FreeBitmapClustersAsync(old).ConfigureAwait(false);
        await FlushMetadataLockedAsync().ConfigureAwait(false);
    }

    /// <summary>Writes one bitmap's data clusters (all-zero clusters are left unallocated) and its table; returns its entry.</summary>
    private async ValueTask<Qcow2BitmapEntry> WriteBitmapAsync(DirtyBitmap bitmap)
    {
        int cs = _layout.ClusterSize;
        long dataSize = bitmap.SerializedLength;
        long tableSize = Qcow2BitmapDirectory.TableSizeFor(dataSize, cs);
        long tableClusters = Math.Max(1, (tableSize * 8 + cs - 1) / cs);
        // Only the entries are written, as QEMU writes them: the rest of the last cluster is never read.
        var table = new byte[tableSize * 8];
        var cluster = new byte[cs];
        for (long i = 0; i < tableSize; i++)
        {
            long at = i * cs;
            int bytes = (int)Math.Min(cs, dataSize - at);
            if (bitmap.IsSerializedRangeClean(at, bytes))
                continue;
            Array.Clear(cluster);
            bitmap.Serialize(at, cluster.AsSpan(0, bytes));
            long host = await _refcounts.AllocateAsync(1).ConfigureAwait(false);
            await CheckOverlapAsync(host, cs, Qcow2OverlapFlags.None).ConfigureAwait(false);
            await _file.WriteAsync(host, cluster.AsMemory()).ConfigureAwait(false);
            BinaryPrimitives.WriteUInt64BigEndian(table.AsSpan((int)(i * 8)), (ulong)host);
        }
        long tableOffset = await _refcounts.AllocateAsync(tableClusters).ConfigureAwait(false);
        await CheckOverlapAsync(tableOffset, table.Length, Qcow2OverlapFlags.None).ConfigureAwait(false);
        if (table.Length > 0)
            await _file.WriteAsync(tableOffset, table.AsMemory()).ConfigureAwait(false);
        return new Qcow2BitmapEntry
        {
            TableOffset = tableOffset,
            TableSize = (uint)tableSize,
            Flags = bitmap.Enabled ? Qcow2BitmapFlags.Auto : Qcow2BitmapFlags.None,
            GranularityBits = bitmap.GranularityBits,
            NameBytes = Encoding.UTF8.GetBytes(bitmap.Name!),
        };
    }

    /// <summary>
    /// Writes <paramref name="entries"/> as a new directory in new clusters, switches the header to it (the extension
    /// and its autoclear bit; both dropped when no bitmap is left) and frees the old directory.
    /// </summary>
    private async ValueTask WriteBitmapDirectoryAsync(List<Qcow2BitmapEntry> entries)
    {
        int cs = _layout.ClusterSize;
        var old = _header.BitmapsExtension is { } ext ? Qcow2BitmapDirectory.ParseExtension(ext, cs) : default;
        if (entries.Count == 0)
        {
            _header.BitmapsExtension = null;
            _header.Autoclear &= ~AutoclearFeatures.Bitmaps;
        }
        else
        {
            var bytes = Qcow2BitmapDirectory.Write(entries);
            long clusters = (bytes.Length + cs - 1) / cs;
            long offset = await _refcounts.AllocateAsync(clusters).ConfigureAwait(false);
            await CheckOverlapAsync(offset, bytes.Length, Qcow2OverlapFlags.None).ConfigureAwait(false);
            await _file.WriteAsync(offset, bytes.AsMemory()).ConfigureAwait(false);
            await FlushMetadataLockedAsync().ConfigureAwait(false);
            _header.BitmapsExtension = Qcow2BitmapDirectory.WriteExtension(entries.Count, bytes.Length, offset);
            _header.Autoclear |= AutoclearFeatures.Bitmaps;
        }
        await WriteHeaderAsync().ConfigureAwait(false);
        _bitmapDirectory = entries;
        RefreshMetadataMap();
        if (old.Size > 0)
            await FreeClustersAsync(old.Offset, (old.Size + cs - 1) / cs, DiscardReason.Other).ConfigureAwait(false);
    }

    /// <summary>Frees a stored bitmap's data clusters and table (entries that are not well formed are left alone).</summary>
    private async ValueTask FreeBitmapClustersAsync(Qcow2BitmapEntry entry)
    {
        int cs = _layout.ClusterSize;
        if (entry.TableOffset <= 0 || (entry.TableOffset & (cs - 1)) != 0 || entry.TableSize == 0)
            return;
        foreach (ulong e in await ReadBitmapTableAsync(entry).ConfigureAwait(false))
        {
            long host = (long)(e & Qcow2BitmapDirectory.TableOffsetMask);
            if (host != 0 && Qcow2BitmapDirectory.IsValidTableEntry(e, cs))
                await FreeClustersAsync(host, 1, DiscardReason.Always).ConfigureAwait(false);
        }
        await FreeClustersAsync(entry.TableOffset, (entry.TableSize * 8L + cs - 1) / cs, DiscardReason.Other).ConfigureAwait(false);
    }

    /// <summary>
    /// Drops one reference to each of <paramref name="clusters"/> clusters; a failure is reported and skipped (a leak).
    /// QEMU discards freed bitmap data in the file always, tables and an old directory only as pass-discard-other says.
    /// </summary>
    private async ValueTask FreeClustersAsync(long offset, long clusters, DiscardReason reason)
    {
        try
        {
            await _refcounts.UpdateAsync(offset >> _layout.ClusterBits, clusters, -1, reason).ConfigureAwait(false);
        }
        catch (BlockException e)
        {
            Node.Graph.Warn($"qcow2_free_clusters failed: {e.Message}");
        }
    }

    /// <summary>
    /// Counts the bitmap directory, tables and data clusters for a check (a stale, ignored extension counts nothing:
    /// its clusters are leaks). A malformed table entry fails the check with EINVAL, as QEMU's does.
    /// </summary>
    private async ValueTask CountBitmapsAsync(Action<long, long> count)
    {
        if (_bitmapDirectory.Count == 0 || _header.BitmapsExtension is not { } ext)
            return;
        int cs = _layout.ClusterSize;
        var (_, size, offset) = Qcow2BitmapDirectory.ParseExtension(ext, cs);
        count(offset, size);
        foreach (var entry in _bitmapDirectory)
        {
            count(entry.TableOffset, entry.TableSize * 8L);
            if (entry.TableOffset < 0)
                throw new BlockException(Errno.EIO, "Input/output error");
            // Chunks of 64 Ki entries: an in-use bitmap's table was never checked against the disk size.
            var raw = new byte[Math.Min(entry.TableSize, 65536u) * 8];
            for (long first = 0; first < entry.TableSize; first += raw.Length / 8)
            {
                int n = (int)Math.Min(raw.Length / 8, entry.TableSize - first);
                await ReadPastEndAsZeroesAsync(entry.TableOffset + first * 8, raw.AsMemory(0, n * 8)).ConfigureAwait(false);
                for (int i = 0; i < n; i++)
                {
                    ulong e = BinaryPrimitives.ReadUInt64BigEndian(raw.AsSpan(i * 8));
                    if (!Qcow2BitmapDirectory.IsValidTableEntry(e, cs))
                        throw new BlockException(Errno.EINVAL, "Invalid argument");
                    if ((e & Qcow2BitmapDirectory.TableOffsetMask) is var host and not 0)
                        count((long)host, cs);
                }
            }
        }
    }
}
