using Block.Drivers.Blkdebug;
using System.Buffers;
using Block.Io;
using Block.Qcow2.Compression;
using Block.Qcow2.Format;
using Block.Qcow2.Metadata;

namespace Block.Qcow2.Driver;

internal sealed partial class Qcow2NodeDriver
{
    /// <summary>
    /// Writes whole clusters compressed (<c>write -c</c>, <c>convert -c</c>). Each cluster must be unallocated or a
    /// plain zero cluster, as in QEMU: compression never overwrites data. A cluster that does not compress is written
    /// normally. An empty compressed write ends the compressed stream: the file is rounded up to a whole sector, as
    /// QEMU does when <c>qemu-img convert -c</c> finishes.
    /// </summary>
    /// <remarks>
    /// The clusters of one request are compressed on every core at once, then allocated and written one after the
    /// other in guest order, so the file comes out as a sequential compression would lay it out. <c>blk convert -c</c>
    /// sends runs of up to 2 MiB as one request: deflate, about 80% of its time, then runs on both cores.
    /// </remarks>
    private async ValueTask WriteCompressedAsync(long offset, IoVector buffers)
    {
        int cs = _layout.ClusterSize;
        if (buffers.Length == 0)
        {
            // A node's length is whole sectors: truncating the file to it rounds the last compressed cluster up.
            await _file.TruncateAsync(_file.Length).ConfigureAwait(false);
            return;
        }
        if (_hasDataFile)
            throw new BlockException(Errno.ENOTSUP, "Compression is not supported with an external data file");
        if ((offset & (cs - 1)) != 0 || ((buffers.Length & (cs - 1)) != 0 && offset + buffers.Length != _size))
            throw new BlockException(Errno.EINVAL, "Compressed writes must be whole clusters");
        var type = (Qcow2CompressionType)_header.CompressionType;
        int count = (buffers.Length + cs - 1) / cs;
        var compressed = new byte[count][];
        var lengths = new int[count];
        try
        {
            void CompressOne(int i)
            {
                int done = i * cs;
                int n = Math.Min(cs, buffers.Length - done);
                var cluster = ArrayPool<byte>.Shared.Rent(cs);
                try
                {
                    buffers.Slice(done, n).CopyTo(cluster);
                    cluster.AsSpan(n, cs - n).Clear();
                    compressed[i] = ArrayPool<byte>.Shared.Rent(cs);
                    lengths[i] = Qcow2Compression.Compress(type, cluster.AsSpan(0, cs), compressed[i].AsSpan(0, cs));
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(cluster);
                }
            }
            if (count == 1 || Environment.ProcessorCount == 1)
            {
                for (int i = 0; i < count; i++)
                    CompressOne(i);
            }
            else
            {
                Parallel.For(0, count, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, CompressOne);
            }
            for (int i = 0; i < count; i++)
            {
                int done = i * cs;
                int n = Math.Min(cs, buffers.Length - done);
                if (lengths[i] < 0)
                    await WriteSlowAsync(offset + done, buffers.Slice(done, n)).ConfigureAwait(false);
                else
                    await WriteCompressedClusterAsync(offset + done, compressed[i].AsMemory(0, lengths[i])).ConfigureAwait(false);
            }
        }
        finally
        {
            foreach (var c in compressed)
            {
                if (c != null)
                    ArrayPool<byte>.Shared.Return(c);
            }
        }
    }

    private async ValueTask WriteCompressedClusterAsync(long offset, Memory<byte> data)
    {
        int cs = _layout.ClusterSize;
        InFlightAllocation flight;
        long host;
        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            while (true)
            {
                ThrowIfCorrupt();
                var blocker = FindInFlight(offset, offset + cs);
                if (blocker is null)
                    break;
                var done = blocker.WhenDone();
                _lock.Release();
                try
                {
                    await done.ConfigureAwait(false);
                }
                finally
                {
                    await _lock.WaitAsync().ConfigureAwait(false);
                }
            }
            var (slice, index) = await GetSliceForWriteAsync(offset).ConfigureAwait(false);
            ulong old = EntryAt(slice.Data, index);
            if ((old & Qcow2Layout.OffsetMask) != 0 || (old & Qcow2Layout.CompressedFlag) != 0)
                throw new BlockException(Errno.EIO, "Compression can't overwrite anything: the cluster is already allocated");
            if (_lazyRefcounts)
                await MarkDirtyAsync().ConfigureAwait(false);
            await _file.DebugEventAsync(BlkdebugEvent.ClusterAllocBytes).ConfigureAwait(false);
            host = await _refcounts.AllocateBytesAsync(data.Length).ConfigureAwait(false);
            try
            {
                await CheckOverlapAsync(host, data.Length, Qcow2OverlapFlags.None).ConfigureAwait(false);
            }
            catch
            {
                await _refcounts.ReleaseBytesAsync(host, data.Length).ConfigureAwait(false);
                throw;
            }
            flight = new InFlightAllocation(offset, offset + cs);
            _inFlight.Add(flight);
        }
        finally
        {
            _lock.Release();
        }

        var step = new WriteStep { InFlight = flight };
        try
        {
            await _file.DebugEventAsync(BlkdebugEvent.WriteCompressed).ConfigureAwait(false);
            await _file.WriteAsync(host, data).ConfigureAwait(false);
        }
        catch
        {
            await _lock.WaitAsync().ConfigureAwait(false);
            try
            {
                await _refcounts.ReleaseBytesAsync(host, data.Length).ConfigureAwait(false);
            }
            catch (BlockException)
            {
                // A leak at worst.
            }
            finally
            {
                FinishInFlight(step);
                _lock.Release();
            }
            throw;
        }

        await _lock.WaitAsync().ConfigureAwait(false);
        try
        {
            var (slice, index) = await GetSliceForWriteAsync(offset).ConfigureAwait(false);
            if (!_lazyRefcounts)
                await _l2Cache.SetDependency(_refcounts.Blocks).ConfigureAwait(false);
            _l2Cache.SetDependsOnFlush();
            await _file.DebugEventAsync(BlkdebugEvent.L2UpdateCompressed).ConfigureAwait(false);
            SetEntry(slice.Data, index, _layout.CompressedEntry(host, data.Length), 0);
            MetadataCache.MarkDirty(slice);
        }
        finally
        {
            FinishInFlight(step);
            _lock.Release();
        }
    }
}
