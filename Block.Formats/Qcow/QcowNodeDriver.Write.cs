using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Block.Crypto.Ciphers;
using Block.Drivers.Blkdebug;
using Block.Graph;
using Block.Io;

namespace Block.Formats.Qcow;

internal sealed partial class QcowNodeDriver
{
    public override ValueTask WriteAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        long inCluster = offset & (_clusterSize - 1);
        if (_plain && inCluster + buffers.Length <= _clusterSize)
        {
            var table = Volatile.Read(ref _l2[L1Index(offset)]);
            if (table != null)
            {
                ulong entry = Volatile.Read(ref table[L2Index(offset)]);
                if (IsPlainCluster(entry) && !BlockNode.DebugEventsEnabled)
                    return _file.WriteAsync((long)entry + inCluster, buffers);
            }
        }
        return WriteSlowAsync(offset, buffers);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask WriteSlowAsync(long offset, IoVector buffers)
    {
        EnsureKey();
        int done = 0;
        while (done < buffers.Length)
        {
            long at = offset + done;
            int n = (int)Math.Min(buffers.Length - done, _clusterSize - (at & (_clusterSize - 1)));
            var data = buffers.Slice(done, n);
            var table = await GetL2Async(L1Index(at)).ConfigureAwait(false);
            ulong entry = table is null ? 0 : Volatile.Read(ref table[L2Index(at)]);
            if (IsPlainCluster(entry))
            {
                // Allocated plain clusters never move while the image is open: write them without the lock.
                await WriteInPlaceAsync(at, entry, data).ConfigureAwait(false);
            }
            else
            {
                await _lock.WaitAsync().ConfigureAwait(false);
                try
                {
                    await AllocateLockedAsync(at, data).ConfigureAwait(false);
                }
                finally
                {
                    _lock.Release();
                }
            }
            done += n;
        }
    }

    /// <summary>Writes <paramref name="data"/> at guest <paramref name="at"/> into the plain cluster <paramref name="entry"/>, encrypting it if the image is.</summary>
    private async ValueTask WriteInPlaceAsync(long at, ulong entry, IoVector data)
    {
        long host = (long)entry + (at & (_clusterSize - 1));
        await _file.DebugEventAsync(BlkdebugEvent.WriteAio).ConfigureAwait(false);
        if (_cipher is null)
        {
            await _file.WriteAsync(host, data).ConfigureAwait(false);
            return;
        }
        var bounce = Node.Graph.Buffers.Rent(data.Length);
        try
        {
            var memory = bounce.Memory[..data.Length];
            data.CopyTo(memory.Span);
            _cipher.Encrypt(memory.Span, (ulong)at / SectorCipher.SectorSize);
            await _file.WriteAsync(host, memory).ConfigureAwait(false);
        }
        finally
        {
            bounce.Return(clear: false);
        }
    }

    /// <summary>
    /// Under <see cref="_lock"/>: writes <paramref name="data"/> (inside one cluster) at guest <paramref name="at"/>,
    /// whose cluster is unallocated or compressed (or was allocated meanwhile), allocating as QEMU does.
    /// </summary>
    private async ValueTask AllocateLockedAsync(long at, IoVector data)
    {
        int l1Index = L1Index(at), index = L2Index(at);
        var table = await GetL2LockedAsync(l1Index).ConfigureAwait(false);
        ulong entry = table is null ? 0 : table[index];
        if (IsPlainCluster(entry))
        {
            await WriteInPlaceAsync(at, entry, data).ConfigureAwait(false);
            return;
        }
        if (entry != 0 && (entry & CompressedFlag) == 0)
            throw BadL2Entry(at, entry);

        // QEMU's layout: a new L2 table at the end of the file rounded up to a cluster, then the data cluster after it.
        long tableOffset = 0;
        if (table is null)
        {
            tableOffset = RoundUpToCluster(_fileEnd);
            _fileEnd = tableOffset + L2Bytes;
        }
        await _file.DebugEventAsync(BlkdebugEvent.ClusterAlloc).ConfigureAwait(false);
        long host = RoundUpToCluster(_fileEnd);
        _fileEnd = host + _clusterSize;

        await WriteNewClusterAsync(at, entry, data, host).ConfigureAwait(false);
        // The data must be durable before an entry names it: a crash in between leaves a leak, not garbage.
        await _file.FlushAsync().ConfigureAwait(false);

        if (table != null)
        {
            Volatile.Write(ref table[index], (ulong)host);
            var bytes = new byte[8];
            BinaryPrimitives.WriteUInt64BigEndian(bytes, (ulong)host);
            await _file.DebugEventAsync(BlkdebugEvent.L2Update).ConfigureAwait(false);
            await _file.WriteAsync((long)_l1[l1Index] + (long)index * 8, bytes.AsMemory()).ConfigureAwait(false);
            return;
        }

        // A new table reaches the file before the L1 entry that names it.
        table = new ulong[_l2Entries];
        table[index] = (ulong)host;
        var tableBytes = new byte[L2Bytes];
        BinaryPrimitives.WriteUInt64BigEndian(tableBytes.AsSpan(index * 8), (ulong)host);
        // QEMU writes the new table empty (l2_load, its cache slot) and then the entry (l2_update); one write here.
        await _file.DebugEventAsync(BlkdebugEvent.L2Load).ConfigureAwait(false);
        await _file.DebugEventAsync(BlkdebugEvent.L2Update).ConfigureAwait(false);
        await _file.WriteAsync(tableOffset, tableBytes.AsMemory()).ConfigureAwait(false);
        await _file.FlushAsync().ConfigureAwait(false);
        var l1Entry = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(l1Entry, (ulong)tableOffset);
        await _file.DebugEventAsync(BlkdebugEvent.L1Update).ConfigureAwait(false);
        await _file.WriteAsync((long)_header.L1TableOffset + (long)l1Index * 8, l1Entry.AsMemory()).ConfigureAwait(false);
        _l2ByOffset[(ulong)tableOffset] = table;
        Volatile.Write(ref _l1[l1Index], (ulong)tableOffset);
        Volatile.Write(ref _l2[l1Index], table);
    }

    /// <summary>
    /// Writes the whole new cluster at <paramref name="host"/> for the guest cluster of <paramref name="at"/>:
    /// <paramref name="data"/> in it, and around it what QEMU leaves there: the inflated old content of a compressed
    /// cluster, otherwise zeroes (not the backing file's data: qcow copies nothing on write, which is why its images
    /// with a backing file have 512-byte clusters). Encrypted images get it all encrypted.
    /// </summary>
    private async ValueTask WriteNewClusterAsync(long at, ulong entry, IoVector data, long host)
    {
        int size = (int)_clusterSize;
        long clusterStart = at & ~(_clusterSize - 1);
        var buffer = Node.Graph.Buffers.Rent(size);
        try
        {
            var whole = buffer.Memory[..size];
            int head = (int)(at - clusterStart);
            if (data.Length < size && (entry & CompressedFlag) != 0)
            {
                await InflateLockedAsync(at, entry).ConfigureAwait(false);
                _inflated.CopyTo(whole.Span);
            }
            else
            {
                whole.Span.Clear();
            }
            data.CopyTo(whole.Span.Slice(head, data.Length));
            _cipher?.Encrypt(whole.Span, (ulong)clusterStart / SectorCipher.SectorSize);
            await _file.DebugEventAsync(BlkdebugEvent.WriteAio).ConfigureAwait(false);
            await _file.WriteAsync(host, whole).ConfigureAwait(false);
        }
        finally
        {
            buffer.Return(clear: _cipher != null);
        }
    }

    private long RoundUpToCluster(long offset) => (offset + _clusterSize - 1) & ~(_clusterSize - 1);
}
