using Block.Drivers.Blkdebug;
using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Block.Graph;
using Block.Io;
using Block.Qcow2.Format;
using Block.Qcow2.Metadata;

namespace Block.Qcow2.Driver;

internal sealed partial class Qcow2NodeDriver
{
    /// <summary>What one step of a write does with the clusters it covers.</summary>
    private enum WriteKind
    {
        /// <summary>Clusters with refcount 1 and data where the write goes: write in place, no metadata change.</summary>
        InPlace,
        /// <summary>New host clusters: copy the untouched head and tail, write, then link them into L2.</summary>
        Allocate,
        /// <summary>
        /// An existing host cluster with refcount 1 whose touched part is not data yet (preallocated zero, or
        /// subclusters not allocated): fill the touched (sub)clusters in place, then update the L2 entry.
        /// </summary>
        Reuse,
    }

    /// <summary>One step of a write: a run of clusters within one L2 slice, handled alike.</summary>
    private sealed class WriteStep
    {
        public WriteKind Kind;
        /// <summary>Guest offset of the first byte the step writes.</summary>
        public long Offset;
        /// <summary>Guest bytes of the request the step writes.</summary>
        public int Bytes;
        /// <summary>Guest offset of the step's first cluster.</summary>
        public long First;
        public int Clusters;
        /// <summary>Host offset of the first cluster (in the data file).</summary>
        public long Host;
        /// <summary>Guest range rewritten on the host: the request plus the copied head and tail.</summary>
        public long CopyStart, CopyEnd;
        /// <summary>The part of the copy range actually written: zero head and tail need no write in a cluster past the end of the file.</summary>
        public long WriteStart, WriteEnd;
        /// <summary>The old content of the head and tail is known to read as zeroes.</summary>
        public bool HeadZero, TailZero;
        /// <summary>
        /// Extended L2: the first / last cluster is replaced whole (its old data is shared or compressed), so every
        /// subcluster of it becomes data. Other clusters of the step keep the subcluster state of what they hold.
        /// </summary>
        public bool WholeFirst, WholeLast;
        /// <summary>The in-flight range registered for the step (<see cref="Flight"/> while registered), or null.</summary>
        public InFlightAllocation? InFlight;
        /// <summary>The step's own in-flight range object, reused with the step.</summary>
        public readonly InFlightAllocation Flight = new();

        /// <summary>Clears the step for its next use (the pool hands out steps as new).</summary>
        public void Reset()
        {
            Kind = default;
            Offset = First = Host = CopyStart = CopyEnd = WriteStart = WriteEnd = 0;
            Bytes = Clusters = 0;
            HeadZero = TailZero = WholeFirst = WholeLast = false;
            InFlight = null;
        }
    }

    private const int MaxPooledSteps = 64;
    private readonly Stack<WriteStep> _stepPool = new();

    /// <summary>A cleared write step from the pool (allocating writes keep no per-request garbage).</summary>
    private WriteStep RentStep()
    {
        lock (_stepPool)
        {
            if (_stepPool.TryPop(out var step))
                return step;
        }
        return new WriteStep();
    }

    /// <summary>Gives a finished step back; nothing may use it afterwards (its in-flight range is already removed).</summary>
    private void ReturnStep(WriteStep step)
    {
        if (step.InFlight != null)
            return;
        step.Reset();
        lock (_stepPool)
        {
            if (_stepPool.Count < MaxPooledSteps)
                _stepPool.Push(step);
        }
    }

    /// <inheritdoc />
    /// <remarks>A write inside one cluster that is already data with refcount 1, with its L2 slice cached, goes straight
    /// to the data file after an in-memory overlap check: no lock, no allocation (an encrypted image encrypts into a
    /// pooled bounce buffer).</remarks>
    public override ValueTask WriteAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        if (_corrupt)
            return ValueTask.FromException(CorruptError());
        // Refused before any cluster is allocated: the data could not be encrypted.
        if (_encryption is { Cipher: null })
            return ValueTask.FromException(LockedError());
        if ((flags & RequestFlags.Compressed) != 0)
            return WriteCompressedAsync(offset, buffers);
        int length = buffers.Length;
        if (!BlockNode.DebugEventsEnabled && _layout.ClusterIndex(offset) == _layout.ClusterIndex(offset + length - 1)
            && TryMapCached(offset, length, out var run) && run.Bytes == length && run.Type == SubclusterType.Normal
            && (run.Entry & Qcow2Layout.Copied) != 0 && DataWriteIsSafe(run.Host, length))
        {
            return WriteDataAsync(offset, run.Host, buffers);
        }
        return WriteSlowAsync(offset, buffers);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask WriteSlowAsync(long offset, IoVector buffers)
    {
        int done = 0;
        while (done < buffers.Length)
        {
            var step = await PlanWriteAsync(offset + done, buffers.Length - done).ConfigureAwait(false);
            try
            {
                await WriteStepDataAsync(step, buffers.Slice(done, step.Bytes)).ConfigureAwait(false);
            }
            catch
            {
                await AbortStepAsync(step).ConfigureAwait(false);
                ReturnStep(step);
                throw;
            }
            if (step.Kind != WriteKind.InPlace)
                await LinkStepAsync(step).ConfigureAwait(false);
            done += step.Bytes;
            ReturnStep(step);
        }
    }

    /// <summary>
    /// Under the lock: waits for allocations in flight on the first cluster, makes sure the L2 table exists and is
    /// ours, and decides what the next run of clusters needs.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<WriteStep> PlanWriteAsync(long offset, int bytes)
    {
        int cs = _layout.ClusterSize;
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            long end = offset + bytes;
            while (true)
            {
                ThrowIfCorrupt();
                var blocker = FindInFlight(_layout.AlignDown(offset), _layout.AlignUp(end));
                if (blocker is null)
                    break;
                if (blocker.Start > _layout.AlignDown(offset))
                {
                    // Stop short of it; the rest waits its turn in a later step.
                    end = blocker.Start;
                    continue;
                }
                var waitFor = blocker.WhenDone();
                _lock.Release();
                try
                {
                    await waitFor.ConfigureAwait(false);
                }
                finally
                {
                    await _lock.WaitAsync().ConfigureAwait(false);
                }
            }

            var (slice, index) = await GetSliceForWriteAsync(offset).ConfigureAwait(false);
            end = Math.Min(end, offset + ToSliceEnd(offset));
            var data = slice.Data;
            ulong entry = EntryAt(data, index);
            ulong bitmap = BitmapAt(data, index);
            long first = _layout.AlignDown(offset);
            var step = RentStep();
            step.Offset = offset;
            step.First = first;

            if (IsWritableInPlace(entry, bitmap, offset, Math.Min(end, first + cs)))
            {
                // A run of data clusters with refcount 1, contiguous on the host.
                long host = (long)(entry & Qcow2Layout.OffsetMask);
                long pos = first + cs;
                int i = index;
                while (pos < end && ++i < _sliceEntries)
                {
                    ulong e = EntryAt(data, i);
                    if ((long)(e & Qcow2Layout.OffsetMask) != host + (pos - first) || !IsWritableInPlace(e, BitmapAt(data, i), pos, Math.Min(end, pos + cs)))
                        break;
                    pos += cs;
                }
                step.Kind = WriteKind.InPlace;
                step.Bytes = (int)(Math.Min(end, pos) - offset);
                step.Host = host + (offset - first);
                step.Clusters = (int)((_layout.AlignUp(offset + step.Bytes) - first) >> _layout.ClusterBits);
                await CheckDataOverlapAsync(step.Host, step.Bytes).ConfigureAwait(false);
                return step;
            }

            var firstType = TypeOf(entry, bitmap, SubclusterOf(offset));
            if (firstType == SubclusterType.Invalid)
                throw await SignalCorruptionAsync(InvalidEntryMessage(entry, offset), (long)(entry & Qcow2Layout.OffsetMask), null).ConfigureAwait(false);

            if (CanReuse(entry))
            {
                step.Kind = WriteKind.Reuse;
                step.Clusters = 1;
                step.Bytes = (int)(Math.Min(end, first + cs) - offset);
                step.Host = (long)(entry & Qcow2Layout.OffsetMask);
            }
            else
            {
                // A run of clusters that all need new host clusters.
                long pos = first + cs;
                int i = index;
                while (pos < end && ++i < _sliceEntries)
                {
                    ulong e = EntryAt(data, i);
                    if (CanReuse(e) || IsWritableInPlace(e, BitmapAt(data, i), pos, Math.Min(end, pos + cs)))
                        break;
                    if (TypeOf(e, BitmapAt(data, i), 0) == SubclusterType.Invalid)
                        break;
                    pos += cs;
                }
                step.Kind = WriteKind.Allocate;
                step.Bytes = (int)(Math.Min(end, pos) - offset);
                step.Clusters = (int)((_layout.AlignUp(offset + step.Bytes) - first) >> _layout.ClusterBits);
                if (_lazyRefcounts)
                    await MarkDirtyAsync().ConfigureAwait(false);
                // External data files are not refcounted: a guest cluster lives at the same offset there.
                step.Host = _hasDataFile ? first : await _refcounts.AllocateAsync(step.Clusters).ConfigureAwait(false);
            }

            PlanCopy(step, data, index);
            step.WriteStart = step.CopyStart;
            step.WriteEnd = step.CopyEnd;
            if (step.Kind == WriteKind.Allocate && !_hasDataFile && step.Host >= _file.Length && _encryption is null)
            {
                // New clusters past the end of the file were never written: they read as zeroes already (unless
                // encrypted: zero plaintext is not zero on disk, so the copy is always written).
                if (step.HeadZero)
                    step.WriteStart = step.Offset;
                if (step.TailZero)
                    step.WriteEnd = step.Offset + step.Bytes;
            }
            try
            {
                await CheckDataOverlapAsync(step.Host + (step.CopyStart - first), step.CopyEnd - step.CopyStart).ConfigureAwait(false);
            }
            catch
            {
                if (step.Kind == WriteKind.Allocate && !_hasDataFile)
                    await _refcounts.ReleaseAsync(step.Host, step.Clusters).ConfigureAwait(false);
                throw;
            }
            step.Flight.Reset(first, first + ((long)step.Clusters << _layout.ClusterBits));
            step.InFlight = step.Flight;
            _inFlight.Add(step.InFlight);
            return step;
        }
        finally
        {
            _lock.Release();
        }
    }

    private int SubclusterOf(long offset) => (int)(_layout.OffsetInCluster(offset) >> _layout.SubclusterBits);

    /// <summary>True if <c>[offset, end)</c> (inside one cluster) is data in a cluster with refcount 1.</summary>
    private bool IsWritableInPlace(ulong entry, ulong bitmap, long offset, long end)
    {
        if ((entry & Qcow2Layout.Copied) == 0 || (entry & Qcow2Layout.CompressedFlag) != 0 || !HasHost(entry))
            return false;
        for (int sc = SubclusterOf(offset); sc <= SubclusterOf(end - 1); sc++)
        {
            if (TypeOf(entry, bitmap, sc) != SubclusterType.Normal)
                return false;
        }
        return true;
    }

    /// <summary>True if the cluster has a host cluster with refcount 1 that a write can fill without allocating.</summary>
    private bool CanReuse(ulong entry) =>
        (entry & Qcow2Layout.Copied) != 0 && (entry & Qcow2Layout.CompressedFlag) == 0 && HasHost(entry)
        && (entry & Qcow2Layout.OffsetMask & (ulong)(_layout.ClusterSize - 1)) == 0;

    /// <summary>
    /// Decides which old content must be copied around the request: whole clusters when the new cluster replaces
    /// everything (standard L2, or old data that is shared or compressed); only the partial subclusters at the ends
    /// otherwise (extended L2 keeps the other subclusters' state in the bitmap).
    /// </summary>
    private void PlanCopy(WriteStep step, byte[] slice, int index)
    {
        int cs = _layout.ClusterSize;
        int sc = _layout.SubclusterSize;
        long end = step.Offset + step.Bytes;
        long lastCluster = _layout.AlignDown(end - 1);
        int lastIndex = index + (int)((lastCluster - step.First) >> _layout.ClusterBits);
        ulong firstEntry = EntryAt(slice, index), firstBitmap = BitmapAt(slice, index);
        ulong lastEntry = EntryAt(slice, lastIndex), lastBitmap = BitmapAt(slice, lastIndex);

        bool wholeFirst = !_layout.ExtendedL2 || (step.Kind == WriteKind.Allocate && HasOldData(firstEntry));
        bool wholeLast = !_layout.ExtendedL2 || (step.Kind == WriteKind.Allocate && HasOldData(lastEntry));
        step.WholeFirst = _layout.ExtendedL2 && wholeFirst;
        step.WholeLast = _layout.ExtendedL2 && wholeLast;

        if (wholeFirst)
            step.CopyStart = step.First;
        else if (step.Kind == WriteKind.Reuse && TypeOf(firstEntry, firstBitmap, SubclusterOf(step.Offset)) == SubclusterType.Normal)
            step.CopyStart = step.Offset;
        else
            step.CopyStart = step.Offset & ~(long)(sc - 1);

        if (wholeLast)
            step.CopyEnd = lastCluster + cs;
        else if (step.Kind == WriteKind.Reuse && TypeOf(lastEntry, lastBitmap, SubclusterOf(end - 1)) == SubclusterType.Normal)
            step.CopyEnd = end;
        else
            step.CopyEnd = ((end - 1) | (long)(sc - 1)) + 1;

        step.HeadZero = step.CopyStart == step.Offset || ReadsAsZero(TypeOf(firstEntry, firstBitmap, SubclusterOf(step.CopyStart)), step.CopyStart, wholeFirst ? firstEntry : 0);
        step.TailZero = step.CopyEnd == end || ReadsAsZero(TypeOf(lastEntry, lastBitmap, SubclusterOf(step.CopyEnd - 1)), end, wholeLast ? lastEntry : 0);
    }

    /// <summary>True if the cluster holds data a new cluster must take over (shared or compressed data).</summary>
    private bool HasOldData(ulong entry) => (entry & Qcow2Layout.CompressedFlag) != 0 || HasHost(entry);

    /// <summary>True if a region of the given type is known to read as zeroes without reading anything.</summary>
    private bool ReadsAsZero(SubclusterType type, long offset, ulong wholeEntry)
    {
        // With whole-cluster copies several subcluster types are involved: only a cluster without any host data qualifies.
        if (wholeEntry != 0 && _layout.ExtendedL2)
            return false;
        return type switch
        {
            SubclusterType.ZeroPlain or SubclusterType.ZeroAlloc => !_layout.ExtendedL2 || wholeEntry == 0,
            SubclusterType.UnallocatedPlain or SubclusterType.UnallocatedAlloc =>
                Node.Backing?.Node is not { } backing || offset >= backing.Length,
            _ => false,
        };
    }

    /// <summary>
    /// Writes the step's data, with the copied head and tail around it in one vectored write (encrypted as a whole on an
    /// encrypted image: the old content copied is decrypted from where it was and encrypted for where it goes).
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask WriteStepDataAsync(WriteStep step, IoVector data)
    {
        if (step.Kind == WriteKind.InPlace)
        {
            await _file.DebugEventAsync(BlkdebugEvent.WriteAio).ConfigureAwait(false);
            await WriteDataAsync(step.Offset, step.Host, data).ConfigureAwait(false);
            return;
        }
        int head = (int)(step.Offset - step.WriteStart);
        int tail = (int)(step.WriteEnd - (step.Offset + step.Bytes));
        byte[]? headBuffer = head > 0 ? ArrayPool<byte>.Shared.Rent(head) : null;
        byte[]? tailBuffer = tail > 0 ? ArrayPool<byte>.Shared.Rent(tail) : null;
        Memory<byte>[]? segments = null;
        try
        {
            // As QEMU: a write with copy-on-write regions is one merged write, reported as cow_read and cow_write.
            if (headBuffer != null || tailBuffer != null)
                await _file.DebugEventAsync(BlkdebugEvent.CowRead).ConfigureAwait(false);
            if (headBuffer != null)
                await ReadOldAsync(step.WriteStart, headBuffer.AsMemory(0, head), step.HeadZero).ConfigureAwait(false);
            if (tailBuffer != null)
                await ReadOldAsync(step.Offset + step.Bytes, tailBuffer.AsMemory(0, tail), step.TailZero).ConfigureAwait(false);
            IoVector vector = data;
            if (headBuffer != null || tailBuffer != null)
            {
                segments = ArrayPool<Memory<byte>>.Shared.Rent(data.SegmentCount + 2);
                int n = 0;
                if (headBuffer != null)
                    segments[n++] = headBuffer.AsMemory(0, head);
                foreach (var segment in data)
                    segments[n++] = segment;
                if (tailBuffer != null)
                    segments[n++] = tailBuffer.AsMemory(0, tail);
                vector = new IoVector(new ReadOnlyMemory<Memory<byte>>(segments, 0, n));
            }
            await _file.DebugEventAsync(headBuffer != null || tailBuffer != null ? BlkdebugEvent.CowWrite : BlkdebugEvent.WriteAio).ConfigureAwait(false);
            await WriteDataAsync(step.WriteStart, step.Host + (step.WriteStart - step.First), vector).ConfigureAwait(false);
            if (step.WriteEnd < step.CopyEnd)
            {
                // The zero tail past the end of the file is not copied, but the file still grows to cover the new
                // clusters whole, as QEMU's does (it writes zero copy regions as one zero write).
                await _data.WriteZeroesAsync(step.Host + (step.WriteEnd - step.First), step.CopyEnd - step.WriteEnd, RequestFlags.None).ConfigureAwait(false);
            }
        }
        finally
        {
            if (segments != null)
                ArrayPool<Memory<byte>>.Shared.Return(segments, clearArray: true);
            // On an encrypted image the copied head and tail are plaintext.
            if (headBuffer != null)
                ArrayPool<byte>.Shared.Return(headBuffer, clearArray: _encryption != null);
            if (tailBuffer != null)
                ArrayPool<byte>.Shared.Return(tailBuffer, clearArray: _encryption != null);
        }
    }

    /// <summary>Reads the current (old) guest content of a copy region; the region is in flight, so nothing changes it.</summary>
    private async ValueTask ReadOldAsync(long offset, Memory<byte> buffer, bool zero)
    {
        if (zero)
        {
            buffer.Span.Clear();
            return;
        }
        await ReadSlowAsync(offset, new IoVector(buffer)).ConfigureAwait(false);
    }

    /// <summary>
    /// Under the lock: points the L2 entries at the written clusters, in the order that keeps a crash harmless (data
    /// and refcounts reach the disk before the entries; the entries before the old clusters' refcounts drop).
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask LinkStepAsync(WriteStep step)
    {
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            var (slice, index) = await GetSliceForWriteAsync(step.First).ConfigureAwait(false);
            var data = slice.Data;
            if (step.Kind == WriteKind.Allocate && !_lazyRefcounts)
                await _l2Cache.SetDependency(_refcounts.Blocks).ConfigureAwait(false);
            _l2Cache.SetDependsOnFlush();

            List<ulong>? freed = null;
            for (int c = 0; c < step.Clusters; c++)
            {
                int i = index + c;
                long clusterStart = step.First + ((long)c << _layout.ClusterBits);
                ulong old = EntryAt(data, i);
                ulong oldBitmap = BitmapAt(data, i);
                long host = step.Host + ((long)c << _layout.ClusterBits);
                ulong entry = ((ulong)host & Qcow2Layout.OffsetMask) | Qcow2Layout.Copied;
                ulong bitmap = 0;
                if (_layout.ExtendedL2)
                {
                    if ((c == 0 && step.WholeFirst) || (c == step.Clusters - 1 && step.WholeLast))
                    {
                        bitmap = 0xffffffffUL;
                    }
                    else
                    {
                        long from = Math.Max(step.CopyStart, clusterStart);
                        long to = Math.Min(step.CopyEnd, clusterStart + _layout.ClusterSize);
                        ulong touched = SubclusterMask(SubclusterOf(from), SubclusterOf(to - 1));
                        bitmap = (oldBitmap | touched) & ~(touched << 32);
                    }
                }
                if (step.Kind == WriteKind.Allocate && HasOldData(old))
                    (freed ??= []).Add(old);
                SetEntry(data, i, entry, bitmap);
            }
            MetadataCache.MarkDirty(slice);
            if (freed != null)
            {
                await _refcounts.Blocks.SetDependency(_l2Cache).ConfigureAwait(false);
                foreach (ulong old in freed)
                    await FreeClusterAsync(old, DiscardReason.Never).ConfigureAwait(false);
            }
        }
        finally
        {
            FinishInFlight(step);
            _lock.Release();
        }
    }

    private static ulong SubclusterMask(int from, int to) =>
        (to - from == 31 ? 0xffffffffUL : ((1UL << (to - from + 1)) - 1)) << from;

    /// <summary>Under the lock: gives back what a failed step allocated.</summary>
    private async ValueTask AbortStepAsync(WriteStep step)
    {
        if (step.Kind == WriteKind.InPlace)
            return;
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            if (step.Kind == WriteKind.Allocate && !_hasDataFile)
                await _refcounts.ReleaseAsync(step.Host, step.Clusters).ConfigureAwait(false);
        }
        catch (BlockException)
        {
            // The clusters leak; qemu-img check -r leaks reclaims them.
        }
        finally
        {
            FinishInFlight(step);
            _lock.Release();
        }
    }

    private void FinishInFlight(WriteStep step)
    {
        if (step.InFlight is { } f)
        {
            _inFlight.Remove(f);
            f.Finish();
            step.InFlight = null;
        }
    }

    private InFlightAllocation? FindInFlight(long start, long end)
    {
        InFlightAllocation? found = null;
        foreach (var f in _inFlight)
        {
            if (f.Start < end && start < f.End && (found is null || f.Start < found.Start))
                found = f;
        }
        return found;
    }

    /// <summary>Drops the reference an L2 entry held on its host cluster(s).</summary>
    private async ValueTask FreeClusterAsync(ulong entry, DiscardReason reason)
    {
        if ((entry & Qcow2Layout.CompressedFlag) != 0)
        {
            var (offset, length) = _layout.CompressedExtent(entry);
            long start = offset & ~511L;
            long sectorsEnd = start + (((long)((entry >> _layout.CompressedSizeShift) & _layout.CompressedSizeMask) + 1) * 512);
            long firstCluster = start >> _layout.ClusterBits;
            long lastCluster = (sectorsEnd - 1) >> _layout.ClusterBits;
            _ = length;
            await _refcounts.UpdateAsync(firstCluster, lastCluster - firstCluster + 1, -1, reason).ConfigureAwait(false);
            return;
        }
        if (_hasDataFile)
        {
            // Clusters of an external data file are not refcounted; the data file keeps its bytes.
            return;
        }
        long host = (long)(entry & Qcow2Layout.OffsetMask);
        if (host != 0)
            await _refcounts.UpdateAsync(host >> _layout.ClusterBits, 1, -1, reason).ConfigureAwait(false);
    }

    private ValueTask CheckDataOverlapAsync(long host, long length) =>
        _hasDataFile ? default : CheckOverlapAsync(host, length, Qcow2OverlapFlags.None);

    /// <summary>
    /// Under the lock: the L2 slice for <paramref name="offset"/>, in an L2 table this image owns (refcount 1),
    /// allocating a new table or copying a shared one first.
    /// </summary>
    private async ValueTask<(CacheEntry Slice, int Index)> GetSliceForWriteAsync(long offset)
    {
        long l1Index = _layout.L1Index(offset);
        if (l1Index >= _l1.Length)
        {
            // Only the VM state area lies past the disk; it grows the L1 table by half again, as QEMU does.
            if (offset < VmStateOffset)
                throw new BlockException(Errno.EIO, $"qcow2: guest offset {offset} lies beyond the L1 table");
            await GrowL1Async(Math.Max(l1Index + 1, _l1.Length + (_l1.Length + 1) / 2)).ConfigureAwait(false);
        }
        ulong l1Entry = _l1[l1Index];
        long l2 = (long)(l1Entry & Qcow2Layout.OffsetMask);
        if ((l2 & (_layout.ClusterSize - 1)) != 0)
            throw await SignalCorruptionAsync(UnalignedL2Message(l1Index), l2, null).ConfigureAwait(false);
        if (l2 == 0 || (l1Entry & Qcow2Layout.Copied) == 0)
            l2 = await AllocateL2Async(l1Index, l2).ConfigureAwait(false);
        int l2Index = _layout.L2Index(offset);
        var slice = await _l2Cache.GetAsync(l2 + (long)(l2Index / _sliceEntries) * _sliceBytes).ConfigureAwait(false);
        return (slice, l2Index % _sliceEntries);
    }

    /// <summary>
    /// Allocates an L2 table for L1 entry <paramref name="l1Index"/>: empty, or a copy of the shared table at
    /// <paramref name="oldL2"/>. The table is on disk before the L1 entry points at it.
    /// </summary>
    private async ValueTask<long> AllocateL2Async(long l1Index, long oldL2)
    {
        int cs = _layout.ClusterSize;
        if (_lazyRefcounts)
            await MarkDirtyAsync().ConfigureAwait(false);
        long l2 = await _refcounts.AllocateAsync(1).ConfigureAwait(false);
        ulong oldEntry = _l1[l1Index];
        int slices = cs / _sliceBytes;
        try
        {
            await CheckOverlapAsync(l2, cs, Qcow2OverlapFlags.None).ConfigureAwait(false);
            if (oldL2 == 0)
            {
                for (int s = 0; s < slices; s++)
                    _l2Cache.Discard(l2 + (long)s * _sliceBytes);
                var zeros = ArrayPool<byte>.Shared.Rent(cs);
                try
                {
                    Array.Clear(zeros, 0, cs);
                    if (!_lazyRefcounts)
                        await _refcounts.Blocks.FlushAsync().ConfigureAwait(false);
                    // Written directly rather than through the cache, but reported as QEMU's cache write is.
                    await _file.DebugEventAsync(BlkdebugEvent.L2AllocWrite).ConfigureAwait(false);
                    await _l2Cache.WriteAllAsync().ConfigureAwait(false);
                    await _file.DebugEventAsync(BlkdebugEvent.L2Update).ConfigureAwait(false);
                    await _file.WriteAsync(l2, zeros.AsMemory(0, cs)).ConfigureAwait(false);
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(zeros);
                }
                // The empty table is on disk: cache it clean, so that linking the write does not read it back.
                for (int s = 0; s < slices; s++)
                    await _l2Cache.GetEmptyAsync(l2 + (long)s * _sliceBytes).ConfigureAwait(false);
            }
            else
            {
                for (int s = 0; s < slices; s++)
                {
                    await _file.DebugEventAsync(BlkdebugEvent.L2AllocCowRead).ConfigureAwait(false);
                    var from = await _l2Cache.GetAsync(oldL2 + (long)s * _sliceBytes).ConfigureAwait(false);
                    var bytes = from.Data;
                    var to = await _l2Cache.GetEmptyAsync(l2 + (long)s * _sliceBytes).ConfigureAwait(false);
                    bytes.AsSpan().CopyTo(to.Data);
                    await _file.DebugEventAsync(BlkdebugEvent.L2AllocWrite).ConfigureAwait(false);
                    MetadataCache.MarkDirty(to);
                }
                if (!_lazyRefcounts)
                    await _l2Cache.SetDependency(_refcounts.Blocks).ConfigureAwait(false);
            }
            await _l2Cache.FlushAsync().ConfigureAwait(false);

            _l1[l1Index] = (ulong)l2 | Qcow2Layout.Copied;
            await WriteL1EntryAsync(l1Index).ConfigureAwait(false);
        }
        catch (BlockException)
        {
            // As QEMU: the L1 entry keeps its old table and the new one is freed (the refcount drop reaches the disk
            // with the next refcount write), so a failed allocation leaks nothing.
            _l1[l1Index] = oldEntry;
            for (int s = 0; s < slices; s++)
                _l2Cache.Discard(l2 + (long)s * _sliceBytes);
            try
            {
                await _refcounts.ReleaseAsync(l2, 1).ConfigureAwait(false);
            }
            catch (BlockException)
            {
                // A leak at worst.
            }
            throw;
        }
        _activeL2.Add(l2);
        if (oldL2 != 0)
        {
            _activeL2.Remove(oldL2);
            await _refcounts.UpdateAsync(oldL2 >> _layout.ClusterBits, 1, -1, DiscardReason.Other).ConfigureAwait(false);
        }
        RefreshMetadataMap();
        return l2;
    }

    /// <summary>Writes one L1 entry to disk and syncs it.</summary>
    private async ValueTask WriteL1EntryAsync(long l1Index)
    {
        var bytes = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(bytes, _l1[l1Index]);
        long at = (long)_header.L1TableOffset + l1Index * 8;
        await CheckOverlapAsync(at, 8, Qcow2OverlapFlags.ActiveL1).ConfigureAwait(false);
        await _file.DebugEventAsync(BlkdebugEvent.L1Update).ConfigureAwait(false);
        await _file.WriteAsync(at, bytes.AsMemory()).ConfigureAwait(false);
        await _file.FlushAsync().ConfigureAwait(false);
    }
}
