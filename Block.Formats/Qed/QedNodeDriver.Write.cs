using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Block.Drivers.Blkdebug;
using Block.Graph;
using Block.Io;

namespace Block.Formats.Qed;

internal sealed partial class QedNodeDriver
{
    public override ValueTask WriteAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        long inCluster = offset & (_clusterSize - 1);
        if (inCluster + buffers.Length <= _clusterSize)
        {
            var table = Volatile.Read(ref _l2[L1Index(offset)]);
            if (table != null && !BlockNode.DebugEventsEnabled)
            {
                ulong entry = table[L2Index(offset)];
                if (entry > ZeroCluster && IsValidClusterOffset(entry))
                    return _file.WriteAsync((long)entry + inCluster, buffers);
            }
        }
        return WriteSlowAsync(offset, buffers, buffers.Length, zero: false);
    }

    /// <inheritdoc />
    /// <remarks>Whole clusters only, as QEMU: an unallocated cluster becomes a zero cluster (entry 1, no data), an
    /// allocated one is zeroed in place. Other requests are declined, and the request path writes zero buffers.</remarks>
    public override ValueTask WriteZeroesAsync(long offset, long length, RequestFlags flags)
    {
        if (((offset | length) & (_clusterSize - 1)) != 0)
            return ValueTask.FromException(new BlockException(Errno.ENOTSUP, "write-zeroes of part of a QED cluster"));
        return WriteSlowAsync(offset, default, length, zero: true);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask WriteSlowAsync(long offset, IoVector data, long length, bool zero)
    {
        long done = 0;
        while (done < length)
        {
            long at = offset + done;
            long remaining = length - done;
            var table = await GetL2Async(L1Index(at)).ConfigureAwait(false);
            ulong entry = table?[L2Index(at)] ?? 0;
            long n;
            if (entry > ZeroCluster)
            {
                // Allocated clusters never move or go away while the image is open: write them without the lock.
                n = AllocatedRun(table!, at, entry, remaining);
                await WriteInPlaceAsync(at, entry, data, done, n, zero).ConfigureAwait(false);
            }
            else
            {
                await _lock.WaitAsync().ConfigureAwait(false);
                try
                {
                    n = await AllocateLockedAsync(at, data, done, remaining, zero).ConfigureAwait(false);
                }
                finally
                {
                    _lock.Release();
                }
            }
            done += n;
        }
    }

    /// <summary>Bytes from <paramref name="at"/> (at most <paramref name="remaining"/>) that lie in clusters following <paramref name="entry"/>'s in the file.</summary>
    private long AllocatedRun(ulong[] table, long at, ulong entry, long remaining)
    {
        if (!IsValidClusterOffset(entry))
            throw BadL2Entry(at, entry);
        int index = L2Index(at);
        long inCluster = at & (_clusterSize - 1);
        long n = _clusterSize - inCluster;
        while (n < remaining && index + 1 < _tableEntries && table[index + 1] == entry + (ulong)(n + inCluster) && IsValidClusterOffset(table[index + 1]))
        {
            index++;
            n += _clusterSize;
        }
        return Math.Min(n, remaining);
    }

    private async ValueTask WriteInPlaceAsync(long at, ulong entry, IoVector data, long done, long n, bool zero)
    {
        long host = (long)entry + (at & (_clusterSize - 1));
        await _file.DebugEventAsync(BlkdebugEvent.WriteAio).ConfigureAwait(false);
        await (zero ? _file.WriteZeroesAsync(host, n) : _file.WriteAsync(host, data.Slice((int)done, (int)n))).ConfigureAwait(false);
    }

    /// <summary>
    /// Under <see cref="_lock"/>: writes the request's part that starts at <paramref name="at"/> into a run of clusters
    /// that still need allocating (or were allocated meanwhile), in QEMU's order. Returns the bytes written.
    /// </summary>
    private async ValueTask<long> AllocateLockedAsync(long at, IoVector data, long done, long remaining, bool zero)
    {
        int l1Index = L1Index(at);
        var table = await GetL2LockedAsync(l1Index).ConfigureAwait(false);
        int first = L2Index(at);
        ulong entry = table?[first] ?? 0;
        if (entry > ZeroCluster)
        {
            long n = AllocatedRun(table!, at, entry, remaining);
            await WriteInPlaceAsync(at, entry, data, done, n, zero).ConfigureAwait(false);
            return n;
        }

        // The run: clusters of the same kind (unallocated, or zero) up to the end of the request or of the table.
        long runStart = at & ~(_clusterSize - 1);
        long requestEnd = at + remaining;
        int count = 1;
        while (first + count < _tableEntries && runStart + ((long)count << _clusterShift) < requestEnd
            && (table is null || table[first + count] == entry))
        {
            count++;
        }
        long runEnd = runStart + ((long)count << _clusterShift);
        long written = Math.Min(requestEnd, runEnd) - at;
        if (zero && entry == ZeroCluster)
            return written;

        bool newTable = table is null;
        long tableOffset = 0;
        long host = 0;
        if (!zero)
        {
            host = _fileEnd;
            _fileEnd += (long)count << _clusterShift;
        }
        if (newTable)
        {
            tableOffset = _fileEnd;
            _fileEnd += _header.TableBytes;
        }

        // Without a backing file, a crash from here on may leave entries naming clusters past the file's end: the
        // flag makes the next writable open check (and repair) the image first.
        if (Node.Backing is null && (_header.Features & QedHeader.FeatureNeedCheck) == 0)
        {
            _header.Features |= QedHeader.FeatureNeedCheck;
            await WriteHeaderAsync().ConfigureAwait(false);
        }

        if (!zero)
        {
            await WriteNewClustersAsync(runStart, count, entry, at, data.Slice((int)done, (int)written), host).ConfigureAwait(false);
            // With a backing file there is no need-check: the data must be durable before an entry names it.
            if (Node.Backing != null)
                await _file.FlushAsync().ConfigureAwait(false);
        }

        table ??= new ulong[_tableEntries];
        for (int i = 0; i < count; i++)
            Volatile.Write(ref table[first + i], zero ? ZeroCluster : (ulong)host + ((ulong)i << _clusterShift));
        if (!newTable)
        {
            await WriteTableSectorsAsync(BlkdebugEvent.L2Update, (long)_l1[l1Index], table, first, count).ConfigureAwait(false);
            return written;
        }

        // A new L2 table reaches the file before the L1 entry that names it.
        await WriteTableSectorsAsync(BlkdebugEvent.L2Update, tableOffset, table, 0, _tableEntries).ConfigureAwait(false);
        _l2ByOffset[(ulong)tableOffset] = table;
        Volatile.Write(ref _l2[l1Index], table);
        _l1[l1Index] = (ulong)tableOffset;
        await WriteTableSectorsAsync(BlkdebugEvent.L1Update, (long)_header.L1TableOffset, _l1, l1Index, 1).ConfigureAwait(false);
        return written;
    }

    /// <summary>
    /// Writes <paramref name="count"/> new clusters at <paramref name="host"/> for the guest clusters from
    /// <paramref name="runStart"/>: <paramref name="data"/> at <paramref name="at"/>, and around it what the clusters
    /// read before (the backing file's bytes for unallocated clusters, zeroes for zero clusters or without one).
    /// </summary>
    private async ValueTask WriteNewClustersAsync(long runStart, int count, ulong entry, long at, IoVector data, long host)
    {
        int bytes = checked(count << _clusterShift);
        var buffer = Node.Graph.Buffers.Rent(bytes);
        try
        {
            var whole = buffer.Memory[..bytes];
            int head = (int)(at - runStart);
            int tailStart = head + data.Length;
            var backing = entry == 0 ? Node.Backing?.Node : null;
            if (backing is null)
            {
                whole.Span[..head].Clear();
                whole.Span[tailStart..].Clear();
            }
            else
            {
                if (head > 0)
                    await BackingReads.ReadAsync(backing, runStart, whole[..head]).ConfigureAwait(false);
                if (tailStart < bytes)
                    await BackingReads.ReadAsync(backing, runStart + tailStart, whole[tailStart..]).ConfigureAwait(false);
            }
            data.CopyTo(whole.Span[head..tailStart]);
            if (BlockNode.DebugEventsEnabled && (head > 0 || tailStart < bytes))
            {
                // As QEMU when a blkdebug node may be watching: the clusters' old content (cow_write), then the data.
                await _file.DebugEventAsync(BlkdebugEvent.CowWrite).ConfigureAwait(false);
                await _file.WriteAsync(host, whole).ConfigureAwait(false);
                await _file.DebugEventAsync(BlkdebugEvent.WriteAio).ConfigureAwait(false);
                await _file.WriteAsync(host + head, whole[head..tailStart]).ConfigureAwait(false);
                return;
            }
            await _file.DebugEventAsync(BlkdebugEvent.WriteAio).ConfigureAwait(false);
            await _file.WriteAsync(host, whole).ConfigureAwait(false);
        }
        finally
        {
            buffer.Return(clear: false);
        }
    }

    /// <summary>Reports <paramref name="debugEvent"/> and writes the sectors of the table at <paramref name="tableOffset"/> that hold entries <paramref name="first"/> to <paramref name="first"/>+<paramref name="count"/>.</summary>
    private async ValueTask WriteTableSectorsAsync(BlkdebugEvent debugEvent, long tableOffset, ulong[] table, int first, int count)
    {
        const int EntriesPerSector = 512 / 8;
        int firstSector = first / EntriesPerSector;
        int endSector = (first + count + EntriesPerSector - 1) / EntriesPerSector;
        int bytes = (endSector - firstSector) * 512;
        var buffer = Node.Graph.Buffers.Rent(bytes);
        try
        {
            var span = buffer.Memory[..bytes];
            for (int i = 0; i < bytes / 8; i++)
                BinaryPrimitives.WriteUInt64LittleEndian(span.Span[(i * 8)..], table[firstSector * EntriesPerSector + i]);
            await _file.DebugEventAsync(debugEvent).ConfigureAwait(false);
            await _file.WriteAsync(tableOffset + (long)firstSector * 512, span).ConfigureAwait(false);
        }
        finally
        {
            buffer.Return(clear: false);
        }
    }
}
