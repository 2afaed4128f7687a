using Block.Drivers.Blkdebug;
using System.Collections.Concurrent;
using Block.Graph;

namespace Block.Qcow2.Metadata;

/// <summary>
/// A write-back cache of fixed-size metadata tables read from and written to the image's file: L2 table slices, or
/// refcount blocks. Entries are raw big-endian bytes, exactly as on disk.
/// </summary>
/// <remarks>
/// <para>All changes happen under the driver's metadata lock. Lookups of cached entries (<see cref="TryGet"/>) take no
/// lock, so reads of allocated clusters never wait for metadata work; an entry object is never reused for another
/// table (an evicted entry is left to the GC), so a lock-free reader can at worst see an entry that was evicted,
/// which reflects a state no older than the start of its request.</para>
/// <para>Crash safety rests on the write-back order: before any dirty entry of this cache is written, the cache it
/// depends on is flushed completely (<see cref="SetDependency"/>) and, if asked, the file is synced first
/// (<see cref="SetDependsOnFlush"/>): refcounts before the L2 entries that need them, data before the L2 entries that
/// point at it, L2 entries before the refcount decreases that free their clusters.</para>
/// </remarks>
internal sealed class MetadataCache
{
    private readonly ConcurrentDictionary<long, CacheEntry> _entries = new();
    private readonly BlockNode _owner;
    private readonly BlockNode _file;
    private readonly string _metricsName;
    private readonly Func<long, int, ValueTask> _beforeWrite;
    private long _tick;
    private MetadataCache? _dependency;
    private bool _dependsOnFlush;

    /// <param name="owner">The qcow2 node whose tables these are (for the cache metrics' node tag).</param>
    /// <param name="file">The node the tables live in.</param>
    /// <param name="name">For messages ("L2", "refcount").</param>
    /// <param name="entrySize">Bytes per entry (a slice or a block).</param>
    /// <param name="capacity">Entries kept at most.</param>
    /// <param name="beforeWrite">Called with (offset, length) before an entry is written: the overlap check.</param>
    public MetadataCache(BlockNode owner, BlockNode file, string name, int entrySize, int capacity, Func<long, int, ValueTask> beforeWrite)
    {
        _owner = owner;
        _file = file;
        Name = name;
        _metricsName = name.ToLowerInvariant();
        EntrySize = entrySize;
        Capacity = Math.Max(2, capacity);
        _beforeWrite = beforeWrite;
    }

    public string Name { get; }

    /// <summary>The debug event reported before an entry is read from the file (<c>l2_load</c>), if any.</summary>
    public BlkdebugEvent? LoadEvent { get; init; }

    /// <summary>The debug event reported before an entry is written (<c>l2_update</c>, <c>refblock_update_part</c>).</summary>
    public BlkdebugEvent? WriteEvent { get; init; }

    public int EntrySize { get; }

    public int Capacity { get; private set; }

    public int Count => _entries.Count;

    /// <summary>The entry for the table at <paramref name="offset"/> if it is cached; no lock, no I/O.</summary>
    public CacheEntry? TryGet(long offset)
    {
        if (_entries.TryGetValue(offset, out var e))
        {
            // Written only when it changes (the tick moves on misses): readers on two cores hitting the same slice
            // would otherwise bounce its cache line between them on every request.
            long tick = Volatile.Read(ref _tick);
            if (e.LastUse != tick)
                e.LastUse = tick;
            Qcow2CacheMetrics.Hit(_owner, _metricsName);
            return e;
        }
        return null;
    }

    /// <summary>The entry for the table at <paramref name="offset"/>, read from the file on a miss. Caller holds the metadata lock.</summary>
    public async ValueTask<CacheEntry> GetAsync(long offset)
    {
        if (_entries.TryGetValue(offset, out var e))
        {
            e.LastUse = ++_tick;
            Qcow2CacheMetrics.Hit(_owner, _metricsName);
            return e;
        }
        Qcow2CacheMetrics.Miss(_owner, _metricsName);
        await MakeRoomAsync().ConfigureAwait(false);
        var data = new byte[EntrySize];
        if (LoadEvent is { } load)
            await _file.DebugEventAsync(load).ConfigureAwait(false);
        await _file.ReadAsync(offset, data.AsMemory()).ConfigureAwait(false);
        e = new CacheEntry(offset, data) { LastUse = ++_tick };
        _entries[offset] = e;
        return e;
    }

    /// <summary>A new, zeroed entry for a table just allocated at <paramref name="offset"/> (nothing is read). Caller holds the lock.</summary>
    public async ValueTask<CacheEntry> GetEmptyAsync(long offset)
    {
        if (_entries.TryGetValue(offset, out var existing))
        {
            // A table reallocated at an offset whose old content is still cached: start afresh.
            existing.Data.AsSpan().Clear();
            existing.LastUse = ++_tick;
            return existing;
        }
        await MakeRoomAsync().ConfigureAwait(false);
        var e = new CacheEntry(offset, new byte[EntrySize]) { LastUse = ++_tick };
        _entries[offset] = e;
        return e;
    }

    /// <summary>Marks <paramref name="entry"/> as changed; it is written back on flush or eviction.</summary>
    public static void MarkDirty(CacheEntry entry) => entry.Dirty = true;

    /// <summary>Before any entry of this cache is written, <paramref name="dependency"/> is flushed completely.</summary>
    /// <remarks>If <paramref name="dependency"/> itself waits on another cache, that one is flushed now, so that
    /// dependencies never form a cycle (allocation makes L2 wait on refcounts; freeing makes refcounts wait on L2).</remarks>
    public async ValueTask SetDependency(MetadataCache dependency)
    {
        if (dependency._dependency != null)
            await dependency.FlushDependencyAsync().ConfigureAwait(false);
        if (_dependency != null && _dependency != dependency)
            await FlushDependencyAsync().ConfigureAwait(false);
        _dependency = dependency;
    }

    /// <summary>What "sync the data first" means (<see cref="SetDependsOnFlush"/>): by default a flush of the file; with an
    /// external data file, of both files.</summary>
    public Func<ValueTask>? FlushData { get; set; }

    /// <summary>Before any entry of this cache is written, the file is synced (data written earlier reaches the disk first).</summary>
    public void SetDependsOnFlush() => _dependsOnFlush = true;

    /// <summary>True if some entry waits to be written.</summary>
    public bool HasDirty => _entries.Values.Any(e => e.Dirty);

    /// <summary>Writes every dirty entry (respecting dependencies). Does not sync the file.</summary>
    /// <remarks>An entry that fails to be written does not stop the others, as in QEMU; the first failure is thrown
    /// once all were tried.</remarks>
    public async ValueTask WriteAllAsync()
    {
        Exception? first = null;
        foreach (var e in _entries.Values.Where(e => e.Dirty).OrderBy(e => e.Offset).ToList())
        {
            try
            {
                await WriteBackAsync(e).ConfigureAwait(false);
            }
            catch (BlockException ex)
            {
                first ??= ex;
            }
        }
        if (first != null)
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(first);
    }

    /// <summary>Writes every dirty entry and syncs the file (QEMU's cache flush).</summary>
    public async ValueTask FlushAsync()
    {
        await WriteAllAsync().ConfigureAwait(false);
        await _file.FlushAsync().ConfigureAwait(false);
    }

    /// <summary>Forgets the entry for <paramref name="offset"/> (the table was freed); its dirty content is dropped.</summary>
    public void Discard(long offset) => _entries.TryRemove(offset, out _);

    /// <summary>Forgets every entry, dirty or not (after a failed open, or to drop clean entries at an interval).</summary>
    public void Clear(bool dirtyToo)
    {
        foreach (var (offset, e) in _entries)
        {
            if (dirtyToo || (!e.Dirty && e.Pins == 0))
                _entries.TryRemove(offset, out _);
        }
    }

    /// <summary>Drops clean, unpinned entries not used since <paramref name="tick"/>; returns the current tick (cache-clean-interval).</summary>
    public long DropIdle(long tick)
    {
        foreach (var (offset, e) in _entries)
        {
            if (!e.Dirty && e.Pins == 0 && e.LastUse <= tick)
                _entries.TryRemove(offset, out _);
        }
        return _tick;
    }

    private async ValueTask MakeRoomAsync()
    {
        while (_entries.Count >= Capacity)
        {
            CacheEntry? victim = null;
            foreach (var e in _entries.Values)
            {
                if (e.Pins == 0 && (victim is null || e.LastUse < victim.LastUse))
                    victim = e;
            }
            if (victim is null)
                throw new InvalidOperationException($"qcow2 {Name} cache: every entry is in use");
            if (victim.Dirty)
                await WriteBackAsync(victim).ConfigureAwait(false);
            _entries.TryRemove(victim.Offset, out _);
        }
    }

    private async ValueTask WriteBackAsync(CacheEntry e)
    {
        if (!e.Dirty)
            return;
        await FlushDependencyAsync().ConfigureAwait(false);
        if (_dependsOnFlush)
        {
            _dependsOnFlush = false;
            await (FlushData?.Invoke() ?? _file.FlushAsync()).ConfigureAwait(false);
        }
        await _beforeWrite(e.Offset, EntrySize).ConfigureAwait(false);
        if (WriteEvent is { } write)
            await _file.DebugEventAsync(write).ConfigureAwait(false);
        // Snapshot the bytes first: a writer may change the entry again while it is being written.
        e.Dirty = false;
        var copy = e.Data.ToArray();
        try
        {
            await _file.WriteAsync(e.Offset, copy.AsMemory()).ConfigureAwait(false);
        }
        catch
        {
            e.Dirty = true;
            throw;
        }
    }

    private async ValueTask FlushDependencyAsync()
    {
        if (_dependency is { } d)
        {
            _dependency = null;
            await d.FlushAsync().ConfigureAwait(false);
        }
    }
}

/// <summary>One cached table: its host offset, its bytes, and whether they wait to be written.</summary>
internal sealed class CacheEntry(long offset, byte[] data)
{
    public long Offset { get; } = offset;

    public byte[] Data { get; } = data;

    public volatile bool Dirty;

    public long LastUse;

    /// <summary>Holders that need the entry to stay cached while they work on it under the lock.</summary>
    public int Pins;
}
