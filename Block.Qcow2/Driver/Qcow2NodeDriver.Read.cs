using Block.Drivers.Blkdebug;
using System.Buffers;
using System.Runtime.CompilerServices;
using Block.Graph;
using Block.Io;
using Block.Qcow2.Compression;
using Block.Qcow2.Format;

namespace Block.Qcow2.Driver;

internal sealed partial class Qcow2NodeDriver
{
    /// <inheritdoc />
    /// <remarks>A read inside one run of allocated clusters whose L2 slice is cached goes straight to the data file:
    /// no lock, no allocation, no state machine (on an encrypted image too: it decrypts in the caller's buffers).</remarks>
    public override ValueTask ReadAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        if (_corrupt)
            return ValueTask.FromException(CorruptError());
        // Debug events first: with blkdebug open anywhere the slow path maps the read itself, and a cache lookup here
        // as well would count two hits for one read.
        if (!BlockNode.DebugEventsEnabled && TryMapCached(offset, buffers.Length, out var run) && run.Bytes == buffers.Length
            && run.Type == SubclusterType.Normal)
            return ReadDataAsync(offset, run.Host, buffers);
        return ReadSlowAsync(offset, buffers);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ReadSlowAsync(long offset, IoVector buffers)
    {
        int done = 0;
        while (done < buffers.Length)
        {
            long pos = offset + done;
            var run = await MapAsync(pos, buffers.Length - done).ConfigureAwait(false);
            int n = (int)run.Bytes;
            var part = buffers.Slice(done, n);
            switch (run.Type)
            {
                case SubclusterType.Normal:
                    await _file.DebugEventAsync(BlkdebugEvent.ReadAio).ConfigureAwait(false);
                    await ReadDataAsync(pos, run.Host, part).ConfigureAwait(false);
                    break;
                case SubclusterType.ZeroPlain:
                case SubclusterType.ZeroAlloc:
                    part.Clear();
                    break;
                case SubclusterType.UnallocatedPlain:
                case SubclusterType.UnallocatedAlloc:
                    await ReadBackingAsync(pos, part).ConfigureAwait(false);
                    break;
                case SubclusterType.Compressed:
                    await ReadCompressedAsync(run.Entry, pos, part).ConfigureAwait(false);
                    break;
                default:
                    throw new InvalidOperationException($"Unexpected cluster type {run.Type}");
            }
            done += n;
        }
    }

    /// <summary>Reads what the backing node holds at <paramref name="offset"/>; zeroes past its end or without one.</summary>
    private async ValueTask ReadBackingAsync(long offset, IoVector part)
    {
        var backing = Node.Backing?.Node;
        // Past the disk (the VM state area) nothing shows through from the backing file.
        long available = backing is null ? 0 : Math.Clamp(Math.Min(backing.Length, _size) - offset, 0, part.Length);
        if (available > 0)
        {
            await backing!.DebugEventAsync(BlkdebugEvent.ReadBackingAio).ConfigureAwait(false);
            await backing.ReadAsync(offset, part.Slice(0, (int)available)).ConfigureAwait(false);
        }
        if (available < part.Length)
            part.Slice((int)available).Clear();
    }

    /// <summary>Decompresses the cluster <paramref name="entry"/> describes and copies the part at <paramref name="offset"/>.</summary>
    /// <remarks>Compressed clusters are never encrypted, in encrypted images neither (QEMU stores them in the clear).</remarks>
    private async ValueTask ReadCompressedAsync(ulong entry, long offset, IoVector part)
    {
        int cs = _layout.ClusterSize;
        var cluster = ArrayPool<byte>.Shared.Rent(cs);
        try
        {
            await DecompressClusterAsync(entry, cluster.AsMemory(0, cs)).ConfigureAwait(false);
            part.CopyFrom(cluster.AsSpan((int)_layout.OffsetInCluster(offset), part.Length));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(cluster);
        }
    }

    private async ValueTask DecompressClusterAsync(ulong entry, Memory<byte> cluster)
    {
        var (host, length) = _layout.CompressedExtent(entry);
        // The descriptor may claim sectors past the end of the file (the last compressed cluster's sector): read what exists.
        long fileLength = _file.Length;
        if (host >= fileLength)
            throw await SignalCorruptionAsync($"Compressed cluster at {host:x} lies beyond the end of the image file", host, length).ConfigureAwait(false);
        length = (int)Math.Min(length, fileLength - host);
        var compressed = ArrayPool<byte>.Shared.Rent(length);
        try
        {
            await _file.DebugEventAsync(BlkdebugEvent.ReadCompressed).ConfigureAwait(false);
            await _file.ReadAsync(host, compressed.AsMemory(0, length)).ConfigureAwait(false);
            Qcow2Compression.Decompress((Qcow2CompressionType)_header.CompressionType, compressed.AsSpan(0, length), cluster.Span);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(compressed);
        }
    }

    private BlockException CorruptError() => new(Errno.EIO, "qcow2: the image is corrupt; further I/O is refused");
}
