using Block.Drivers.Blkdebug;
using System.Buffers;
using System.Runtime.CompilerServices;
using Block.Drivers;
using Block.Events;
using Block.Io;
using Block.Qapi;

namespace Block.Graph;

/// <summary>The generic request path: what every request to every node goes through before its driver sees it.</summary>
public sealed partial class BlockNode
{
    /// <summary>The largest offset + length a request may reach (QEMU's <c>BDRV_MAX_LENGTH</c>: 2^63 - 1 GiB).</summary>
    public const long MaxLength = 0x7fffffffc0000000;

    private const int ZeroBufferSize = 1 << 20;
    private static readonly AlignedBuffer s_zeroBuffer = CreateZeroBuffer();

    private long _alignMask;
    private int _maxTransfer = int.MaxValue;
    private RequestFlags _supportedWriteFlags;
    private RequestTracker? _tracker;
    private bool _readOnlyFlag;
    private readonly InFlightCounter _inFlight = new();
    private long _writeThreshold;
    private long _wrHighestOffset;
    private int _dirtySinceFlush;

    /// <summary>Requests in flight on this node now.</summary>
    public int InFlight => (int)_inFlight.Count;

    /// <summary>The end of the highest write or write-zeroes request so far.</summary>
    public long WrHighestOffset => Volatile.Read(ref _wrHighestOffset);

    /// <summary>
    /// Write threshold in bytes: the first write, write-zeroes or discard reaching beyond it raises
    /// <see cref="BlockWriteThresholdEvent"/> and resets it to 0 (one-shot). 0 disables it.
    /// </summary>
    /// <remarks>QEMU keeps the threshold as an unsigned 64-bit number and shows it signed (a threshold of 2^64 - 1
    /// reads -1); a negative value here is such a threshold, at or above 2^63, which no request crosses. See
    /// <see cref="BlockGraph.SetWriteThreshold"/>.</remarks>
    public long WriteThreshold
    {
        get => Volatile.Read(ref _writeThreshold);
        set => Volatile.Write(ref _writeThreshold, value);
    }

    /// <summary>Reads into <paramref name="buffer"/> from <paramref name="offset"/>.</summary>
    public ValueTask ReadAsync(long offset, Memory<byte> buffer, RequestFlags flags = RequestFlags.None) =>
        ReadAsync(offset, new IoVector(buffer), flags);

    /// <summary>Reads into <paramref name="buffers"/> from <paramref name="offset"/>.</summary>
    /// <remarks>
    /// Aligned requests within the transfer limit go straight to the driver: with a synchronous driver and engine
    /// the request completes synchronously and allocates nothing. Others are padded to the alignment with bounce
    /// buffers around the caller's segments (the caller's memory is read into directly) and split.
    /// </remarks>
    public ValueTask ReadAsync(long offset, IoVector buffers, RequestFlags flags = RequestFlags.None)
    {
        int bytes = buffers.Length;
        if ((ulong)offset > (ulong)(MaxLength - bytes))
            return InvalidRequest(offset, bytes);
        var impl = _impl;
        if (impl is null)
            return NotOpen();
        if (bytes == 0)
            return default;
        if (((offset | (long)bytes) & _alignMask) != 0 || bytes > _maxTransfer)
            return ReadPaddedAsync(offset, buffers, flags);

        int token = BeginRequest();
        ValueTask task;
        try
        {
            task = impl.ReadAsync(offset, buffers, flags);
        }
        catch (Exception e)
        {
            MarkDirtySinceFlush();
            EndRequest(token);
            return ValueTask.FromException(e);
        }
        if (task.IsCompletedSuccessfully)
        {
            task.GetAwaiter().GetResult();
            EndRequest(token);
            return default;
        }
        return EndAfterAsync(task, token, markDirty: false);
    }

    /// <summary>Writes <paramref name="data"/> at <paramref name="offset"/>.</summary>
    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags = RequestFlags.None) =>
        WriteAsync(offset, IoVector.FromReadOnly(data), flags);

    /// <summary>Writes <paramref name="data"/> at <paramref name="offset"/>.</summary>
    public ValueTask WriteAsync(long offset, Memory<byte> data, RequestFlags flags = RequestFlags.None) =>
        WriteAsync(offset, new IoVector(data), flags);

    /// <summary>Writes <paramref name="buffers"/> at <paramref name="offset"/>.</summary>
    /// <remarks>
    /// Unaligned writes are read-modify-write: the surrounding aligned blocks are read into bounce buffers and
    /// written back around the caller's segments, serialised against overlapping requests. FUA is emulated with a
    /// flush where the driver cannot do it; all-zero data becomes a write-zeroes request under
    /// <c>detect-zeroes</c>; the write threshold is checked first. An empty write does nothing, except an empty
    /// compressed write, which tells a driver that takes compressed writes that the compressed stream is complete (as
    /// in QEMU: qcow2 then rounds its file up to a whole sector).
    /// </remarks>
    public ValueTask WriteAsync(long offset, IoVector buffers, RequestFlags flags = RequestFlags.None)
    {
        int bytes = buffers.Length;
        if ((ulong)offset > (ulong)(MaxLength - bytes))
            return InvalidRequest(offset, bytes);
        var impl = _impl;
        if (impl is null)
            return NotOpen();
        if (_readOnlyFlag)
            return ReadOnlyError();
        if (bytes == 0)
            return (flags & _supportedWriteFlags & RequestFlags.Compressed) != 0 ? impl.WriteAsync(offset, buffers, flags) : default;
        if (((offset | (long)bytes) & _alignMask) != 0 || bytes > _maxTransfer
            || Volatile.Read(ref _writeThreshold) != 0 || DetectZeroes != BlockdevDetectZeroesOptions.Off
            || (flags & ~_supportedWriteFlags) != 0 || _bitmapArray.Length != 0 || _beforeWrite != null
            || BlkdebugNodeDriver.OpenCount != 0)
            return WriteSlowAsync(offset, buffers, flags);
        // An aligned write on a tracked node (O_DIRECT) waits only for an overlapping read-modify-write; with none in
        // flight it is registered here and goes on as any other.
        var tracker = _tracker;
        TrackedRequest? tracked = null;
        if (tracker != null && !tracker.TryBegin(offset, offset + bytes, out tracked))
            return WriteSlowAsync(offset, buffers, flags);

        NoteHighestOffset(offset + bytes);
        int token = BeginRequest();
        ValueTask task;
        try
        {
            task = impl.WriteAsync(offset, buffers, flags);
        }
        catch (Exception e)
        {
            tracker?.End(tracked!);
            EndRequest(token);
            return ValueTask.FromException(e);
        }
        if (task.IsCompletedSuccessfully)
        {
            task.GetAwaiter().GetResult();
            MarkDirtySinceFlush();
            tracker?.End(tracked!);
            EndRequest(token);
            return default;
        }
        return tracker is null
            ? EndAfterAsync(task, token, markDirty: true)
            : ValueTaskContinuation<(BlockNode Node, int Token, RequestTracker Tracker, TrackedRequest Tracked)>.Then(
                task, (this, token, tracker, tracked!), s_endTrackedWrite);
    }

    private static readonly Func<(BlockNode Node, int Token, RequestTracker Tracker, TrackedRequest Tracked), int, Exception?, ValueTask> s_endTrackedWrite =
        static (s, _, error) =>
        {
            s.Node.MarkDirtySinceFlush();
            s.Tracker.End(s.Tracked);
            s.Node.EndRequest(s.Token);
            return ValueTaskContinuation<(BlockNode, int, RequestTracker, TrackedRequest)>.Propagate(error);
        };

    /// <summary>Makes <c>[offset, offset + bytes)</c> read as zeroes.</summary>
    /// <remarks>
    /// The aligned middle goes to the driver's write-zeroes (which may unmap with <see cref="RequestFlags.MayUnmap"/>
    /// on a <c>discard=unmap</c> node); unaligned ends, and everything when the driver declines, are written from a
    /// shared zero buffer unless <see cref="RequestFlags.NoFallback"/> asks to fail instead.
    /// </remarks>
    public ValueTask WriteZeroesAsync(long offset, long bytes, RequestFlags flags = RequestFlags.None)
    {
        if (offset < 0 || bytes < 0 || offset > MaxLength - bytes)
            return InvalidRequest(offset, bytes);
        if (_impl is null)
            return NotOpen();
        if (_readOnlyFlag)
            return ReadOnlyError();
        if (bytes == 0)
            return default;
        return WriteZeroesSlowAsync(offset, bytes, flags);
    }

    /// <summary>Discards <c>[offset, offset + bytes)</c>; a no-op unless the node was opened with <c>discard=unmap</c>.</summary>
    /// <remarks>Discard is advisory, as in QEMU: parts not aligned to the driver's discard granularity are left alone,
    /// and a driver that cannot discard makes the request succeed without effect.</remarks>
    public ValueTask DiscardAsync(long offset, long bytes)
    {
        if (offset < 0 || bytes < 0 || offset > MaxLength - bytes)
            return InvalidRequest(offset, bytes);
        if (_impl is null)
            return NotOpen();
        if (_readOnlyFlag)
            return ReadOnlyError();
        if (bytes == 0 || Discard != BlockdevDiscardOptions.Unmap)
            return default;
        return DiscardSlowAsync(offset, bytes);
    }

    /// <summary>
    /// Makes every completed write durable: the driver's cached state is written to its children, the storage is
    /// synced (unless <c>cache.no-flush</c>), then every child is flushed.
    /// </summary>
    public ValueTask FlushAsync()
    {
        if (_impl is null)
            return NotOpen();
        return FlushCoreAsync();
    }

    /// <summary>
    /// Starts writing what this node and the nodes below it have written towards the disk, and returns without
    /// waiting for the disk: a hint that makes nothing durable and changes nothing a read returns. Failures are
    /// ignored.
    /// </summary>
    /// <remarks>
    /// For a writer that will flush a lot of data soon (a block job's target, flushed at <c>BLOCK_JOB_READY</c>): the
    /// kernel writes the data while the writer goes on, instead of all at once in the flush, where the writer waits
    /// for it. Cached metadata of format drivers stays cached (writing it early could break their ordering).
    /// </remarks>
    public async ValueTask StartWritebackAsync()
    {
        var impl = _impl;
        if (impl is null || _readOnlyFlag)
            return;
        int token = BeginRequest();
        try
        {
            await impl.StartWritebackAsync().ConfigureAwait(false);
        }
        catch (BlockException)
        {
            // A hint: a file system without sync_file_range loses nothing but the head start.
        }
        finally
        {
            EndRequest(token);
        }
        foreach (var child in Children)
            await child.Node.StartWritebackAsync().ConfigureAwait(false);
    }

    /// <summary>The allocation status of a prefix of <c>[offset, offset + bytes)</c>.</summary>
    /// <param name="offset">Start of the range.</param>
    /// <param name="bytes">Length of the range; the answer may cover less.</param>
    /// <param name="wantZero">True to spend effort on telling zeroes apart (as <c>qemu-img map</c> does).</param>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    public async ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long bytes, bool wantZero = true)
    {
        if (offset < 0 || bytes < 0)
            ThrowHelper.ThrowInvalidRequest(offset, bytes);
        var impl = Impl;
        long length = Length;
        if (offset >= length || bytes == 0)
            return new BlockStatus(BlockStatusFlags.Eof, 0);
        bytes = Math.Min(bytes, length - offset);

        int token = BeginRequest();
        try
        {
            var status = await impl.GetBlockStatusAsync(offset, bytes, wantZero).ConfigureAwait(false);
            long pnum = Math.Clamp(status.Bytes, 1, bytes);
            var flags = status.Flags & ~BlockStatusFlags.Eof;
            if ((flags & BlockStatusFlags.Raw) != 0)
            {
                if (status.File is null)
                    throw new InvalidOperationException($"Driver '{DriverName}' returned a pass-through status without a file");
                var inner = await status.File.GetBlockStatusAsync(status.HostOffset, pnum, wantZero).ConfigureAwait(false);
                if (inner.Bytes == 0)
                {
                    // Past the end of the file below: reads there return zeroes.
                    inner = new BlockStatus(BlockStatusFlags.Zero | BlockStatusFlags.Allocated, pnum);
                }
                pnum = Math.Min(pnum, inner.Bytes);
                flags = inner.Flags & ~BlockStatusFlags.Eof;
                status = inner;
            }
            else
            {
                if ((flags & (BlockStatusFlags.Data | BlockStatusFlags.Zero)) != 0)
                {
                    flags |= BlockStatusFlags.Allocated;
                }
                else if (wantZero)
                {
                    var backing = Backing?.Node;
                    if (backing is null || offset >= backing.Length)
                        flags |= BlockStatusFlags.Zero;
                }

                if (wantZero && (flags & BlockStatusFlags.Recurse) != 0 && (flags & BlockStatusFlags.OffsetValid) != 0
                    && (flags & BlockStatusFlags.Zero) == 0 && status.File != null)
                {
                    // Past the end of the file reads as zeroes; otherwise the answer holds only as far as the file's does.
                    var below = await status.File.GetBlockStatusAsync(status.HostOffset, pnum, wantZero).ConfigureAwait(false);
                    if (below.Bytes == 0 || (below.Flags & BlockStatusFlags.Zero) != 0)
                        flags |= BlockStatusFlags.Zero;
                    if (below.Bytes > 0)
                        pnum = Math.Min(pnum, below.Bytes);
                }
                flags &= ~BlockStatusFlags.Recurse;
            }
            if (offset + pnum == length)
                flags |= BlockStatusFlags.Eof;
            return new BlockStatus(flags, pnum, status.HostOffset, status.File);
        }
        finally
        {
            EndRequest(token);
        }
    }

    /// <summary>Changes the node's length.</summary>
    /// <param name="length">The new length in bytes.</param>
    /// <param name="preallocation">How to allocate a grown area.</param>
    /// <param name="exact">False lets a protocol node keep a larger size than asked when it cannot shrink.</param>
    public ValueTask TruncateAsync(long length, PreallocMode preallocation = PreallocMode.Off, bool exact = false)
    {
        if (length < 0)
            return ValueTask.FromException(new BlockException(Errno.EINVAL, "Image size cannot be negative"));
        if (length > MaxLength)
            return ValueTask.FromException(new BlockException(Errno.EFBIG, $"offset({length}) exceeds maximum({MaxLength})"));
        if (_impl is null)
            return NotOpen();
        if (_readOnlyFlag)
            return ValueTask.FromException(new BlockException(Errno.EACCES, "Image is read-only"));
        return TruncateCoreAsync(length, preallocation, exact);
    }

    /// <summary>Ends the request (<paramref name="token"/>) when <paramref name="task"/> completes, whatever its outcome.</summary>
    private ValueTask EndAfterAsync(ValueTask task, int token, bool markDirty) =>
        ValueTaskContinuation<(BlockNode Node, int Token, bool MarkDirty)>.Then(task, (this, token, markDirty), s_endRequest);

    private static readonly Func<(BlockNode Node, int Token, bool MarkDirty), int, Exception?, ValueTask> s_endRequest = static (s, _, error) =>
    {
        // A failed write may have changed part of the range: the next flush covers it, as QEMU's write counter does.
        if (s.MarkDirty)
            s.Node.MarkDirtySinceFlush();
        s.Node.EndRequest(s.Token);
        return ValueTaskContinuation<(BlockNode, int, bool)>.Propagate(error);
    };

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ReadPaddedAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        int token = BeginRequest();
        try
        {
            var impl = Impl;
            long start = offset & ~_alignMask;
            long end = offset + buffers.Length;
            long alignedEnd = (end + _alignMask) & ~_alignMask;
            if (start == offset && alignedEnd == end)
            {
                await ReadChunkedAsync(impl, offset, buffers, flags).ConfigureAwait(false);
                return;
            }
            var padding = new Padding(this, offset, buffers);
            try
            {
                await ReadChunkedAsync(impl, start, padding.Vector, flags).ConfigureAwait(false);
            }
            finally
            {
                padding.Dispose();
            }
        }
        finally
        {
            EndRequest(token);
        }
    }

    private async ValueTask ReadChunkedAsync(NodeDriver impl, long offset, IoVector buffers, RequestFlags flags)
    {
        int done = 0;
        while (done < buffers.Length)
        {
            int chunk = Math.Min(buffers.Length - done, _maxTransfer);
            await impl.ReadAsync(offset + done, buffers.Slice(done, chunk), flags).ConfigureAwait(false);
            done += chunk;
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask WriteSlowAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        int bytes = buffers.Length;
        if ((flags & RequestFlags.Compressed) != 0 && (_supportedWriteFlags & RequestFlags.Compressed) == 0)
            throw new BlockException(Errno.ENOTSUP, $"Driver '{DriverName}' does not support compressed writes");
        CheckWriteThreshold(offset, bytes);
        if (DetectZeroes != BlockdevDetectZeroesOptions.Off && (flags & RequestFlags.Compressed) == 0 && buffers.IsZero())
        {
            var zeroFlags = flags & RequestFlags.Fua;
            if (DetectZeroes == BlockdevDetectZeroesOptions.Unmap)
                zeroFlags |= RequestFlags.MayUnmap;
            await WriteZeroesSlowAsync(offset, bytes, zeroFlags, thresholdChecked: true).ConfigureAwait(false);
            return;
        }

        NoteHighestOffset(offset + bytes);
        int token = BeginRequest();
        TrackedRequest? tracked = null;
        try
        {
            bool padded = ((offset | (long)bytes) & _alignMask) != 0;
            if (_tracker != null)
                tracked = await _tracker.BeginAsync(offset & ~_alignMask, (offset + bytes + _alignMask) & ~_alignMask, padded).ConfigureAwait(false);
            await NotifyBeforeWriteAsync(offset, bytes).ConfigureAwait(false);
            await WriteMaybePaddedAsync(Impl, offset, buffers, flags).ConfigureAwait(false);
        }
        finally
        {
            _dirtySinceFlush = 1;
            // As QEMU: after the request, whether or not it succeeded.
            MarkDirtyBitmaps(offset, bytes);
            if (tracked != null)
                _tracker!.End(tracked);
            EndRequest(token);
        }
    }

    /// <summary>Writes with read-modify-write of unaligned ends; the caller holds any serialisation needed.</summary>
    private async ValueTask WriteMaybePaddedAsync(NodeDriver impl, long offset, IoVector buffers, RequestFlags flags)
    {
        long end = offset + buffers.Length;
        if (((offset | end) & _alignMask) == 0)
        {
            await DebugEventAsync(BlkdebugEvent.Pwritev).ConfigureAwait(false);
            await WriteChunkedAsync(impl, offset, buffers, flags).ConfigureAwait(false);
            await DebugEventAsync(BlkdebugEvent.PwritevDone).ConfigureAwait(false);
            return;
        }
        var padding = new Padding(this, offset, buffers);
        try
        {
            await padding.ReadEdgesAsync(this, impl).ConfigureAwait(false);
            await DebugEventAsync(BlkdebugEvent.Pwritev).ConfigureAwait(false);
            await WriteChunkedAsync(impl, offset & ~_alignMask, padding.Vector, flags).ConfigureAwait(false);
            await DebugEventAsync(BlkdebugEvent.PwritevDone).ConfigureAwait(false);
        }
        finally
        {
            padding.Dispose();
        }
    }

    private async ValueTask WriteChunkedAsync(NodeDriver impl, long offset, IoVector buffers, RequestFlags flags)
    {
        var driverFlags = flags & _supportedWriteFlags;
        int done = 0;
        while (done < buffers.Length)
        {
            int chunk = Math.Min(buffers.Length - done, _maxTransfer);
            await impl.WriteAsync(offset + done, buffers.Slice(done, chunk), driverFlags).ConfigureAwait(false);
            done += chunk;
        }
        if ((flags & RequestFlags.Fua) != 0 && (_supportedWriteFlags & RequestFlags.Fua) == 0)
            await FlushForFuaAsync().ConfigureAwait(false);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask WriteZeroesSlowAsync(long offset, long bytes, RequestFlags flags, bool thresholdChecked = false)
    {
        if (!thresholdChecked)
            CheckWriteThreshold(offset, bytes);
        NoteHighestOffset(offset + bytes);
        if (Discard != BlockdevDiscardOptions.Unmap)
            flags &= ~RequestFlags.MayUnmap;

        int token = BeginRequest();
        TrackedRequest? tracked = null;
        try
        {
            if (_tracker != null)
            {
                bool padded = ((offset | (offset + bytes)) & _alignMask) != 0;
                tracked = await _tracker.BeginAsync(offset & ~_alignMask, (offset + bytes + _alignMask) & ~_alignMask, padded).ConfigureAwait(false);
            }
            await NotifyBeforeWriteAsync(offset, bytes).ConfigureAwait(false);
            await DebugEventAsync(BlkdebugEvent.PwritevZero).ConfigureAwait(false);
            await WriteZeroesCoreAsync(Impl, offset, bytes, flags).ConfigureAwait(false);
            await DebugEventAsync(BlkdebugEvent.PwritevDone).ConfigureAwait(false);
            _dirtySinceFlush = 1;
        }
        finally
        {
            MarkDirtyBitmaps(offset, bytes);
            if (tracked != null)
                _tracker!.End(tracked);
            EndRequest(token);
        }
    }

    private async ValueTask WriteZeroesCoreAsync(NodeDriver impl, long offset, long bytes, RequestFlags flags)
    {
        long align = Math.Max(Limits.WriteZeroesAlignment, _alignMask + 1);
        long maxZero = Limits.MaxWriteZeroes > 0 ? Math.Max(align, Limits.MaxWriteZeroes / align * align) : long.MaxValue / 2;
        var supported = impl.SupportedZeroFlags;
        bool emulateFua = (flags & RequestFlags.Fua) != 0 && (supported & RequestFlags.Fua) == 0;
        while (bytes > 0)
        {
            long head = offset % align;
            long num;
            bool aligned;
            if (head != 0)
            {
                num = Math.Min(bytes, align - head);
                aligned = false;
            }
            else if (bytes < align)
            {
                num = bytes;
                aligned = (bytes & _alignMask) == 0 && offset + bytes >= Length;
            }
            else
            {
                num = Math.Min(bytes / align * align, maxZero);
                aligned = true;
            }

            bool done = false;
            if (aligned)
            {
                try
                {
                    await impl.WriteZeroesAsync(offset, num, flags & supported).ConfigureAwait(false);
                    done = true;
                }
                catch (BlockException e) when (e.Errno == Errno.ENOTSUP && (flags & RequestFlags.NoFallback) == 0)
                {
                    done = false;
                }
            }
            if (!done)
            {
                if ((flags & RequestFlags.NoFallback) != 0)
                    throw new BlockException(Errno.ENOTSUP, "write-zeroes without fallback not supported here");
                await WriteZeroBuffersAsync(impl, offset, num, flags & RequestFlags.Fua & _supportedWriteFlags).ConfigureAwait(false);
            }
            offset += num;
            bytes -= num;
        }
        if (emulateFua)
            await FlushForFuaAsync().ConfigureAwait(false);
    }

    private async ValueTask WriteZeroBuffersAsync(NodeDriver impl, long offset, long bytes, RequestFlags flags)
    {
        while (bytes > 0)
        {
            int chunk = (int)Math.Min(bytes, ZeroBufferSize);
            var zeros = new IoVector(s_zeroBuffer.Memory[..chunk]);
            await WriteMaybePaddedAsync(impl, offset, zeros, flags).ConfigureAwait(false);
            offset += chunk;
            bytes -= chunk;
        }
    }

    private async ValueTask DiscardSlowAsync(long offset, long bytes)
    {
        CheckWriteThreshold(offset, bytes);
        int token = BeginRequest();
        TrackedRequest? tracked = null;
        try
        {
            var impl = Impl;
            long align = Math.Max(Limits.DiscardAlignment, _alignMask + 1);
            long end = offset + bytes;
            long start = (offset + align - 1) / align * align;
            long alignedEnd = end / align * align;
            if (end == Length && (end & _alignMask) == 0)
                alignedEnd = end;
            if (alignedEnd <= start)
                return;
            if (_tracker != null)
                tracked = await _tracker.BeginAsync(start, alignedEnd, serialising: false).ConfigureAwait(false);
            await NotifyBeforeWriteAsync(start, alignedEnd - start).ConfigureAwait(false);
            long max = Limits.MaxDiscard > 0 ? Math.Max(align, Limits.MaxDiscard / align * align) : long.MaxValue / 2;
            for (long pos = start; pos < alignedEnd;)
            {
                long num = Math.Min(alignedEnd - pos, max);
                try
                {
                    await impl.DiscardAsync(pos, num).ConfigureAwait(false);
                }
                catch (BlockException e) when (e.Errno == Errno.ENOTSUP)
                {
                    return;
                }
                pos += num;
            }
            _dirtySinceFlush = 1;
        }
        finally
        {
            // The whole request, unaligned ends included, as QEMU marks it.
            MarkDirtyBitmaps(offset, bytes);
            if (tracked != null)
                _tracker!.End(tracked);
            EndRequest(token);
        }
    }

    /// <summary>Emulates FUA for the write just done: a flush that includes it.</summary>
    /// <remarks>
    /// QEMU counts the write only once it has returned, so the flush of its FUA emulation reports
    /// <c>flush_to_disk</c> only if earlier writes were waiting; the event follows that, while the flush itself always
    /// covers this write.
    /// </remarks>
    private ValueTask FlushForFuaAsync()
    {
        bool earlierWrites = Interlocked.Exchange(ref _dirtySinceFlush, 1) != 0;
        return FlushCoreAsync(reportToDisk: earlierWrites);
    }

    private async ValueTask FlushCoreAsync(bool reportToDisk = true)
    {
        int token = BeginRequest();
        try
        {
            var impl = Impl;
            // As QEMU, the flush events are reported to the primary child (a format's file), before each step.
            var primary = BlkdebugNodeDriver.OpenCount != 0 ? PrimaryChild?.Node : null;
            if (primary != null)
                await primary.DebugEventAsync(BlkdebugEvent.FlushToOs).ConfigureAwait(false);
            await impl.FlushToOsAsync().ConfigureAwait(false);
            if (!CacheNoFlush && Interlocked.Exchange(ref _dirtySinceFlush, 0) != 0)
            {
                try
                {
                    if (primary != null && reportToDisk)
                        await primary.DebugEventAsync(BlkdebugEvent.FlushToDisk).ConfigureAwait(false);
                    await impl.FlushToDiskAsync().ConfigureAwait(false);
                }
                catch
                {
                    _dirtySinceFlush = 1;
                    throw;
                }
            }
            if (!impl.FlushesChildren)
            {
                foreach (var child in Children)
                    await child.Node.FlushAsync().ConfigureAwait(false);
            }
        }
        finally
        {
            EndRequest(token);
        }
    }

    private async ValueTask TruncateCoreAsync(long length, PreallocMode preallocation, bool exact)
    {
        int token = BeginRequest();
        TrackedRequest? tracked = null;
        try
        {
            var impl = Impl;
            long old = Length;
            if (_tracker != null)
                tracked = await _tracker.BeginAsync(Math.Min(old, length) & ~_alignMask, MaxLength, serialising: true).ConfigureAwait(false);
            await impl.TruncateAsync(length, preallocation, exact).ConfigureAwait(false);
            _dirtySinceFlush = 1;
            ResizeDirtyBitmaps();
        }
        finally
        {
            if (tracked != null)
                _tracker!.End(tracked);
            EndRequest(token);
        }
        Graph.OnNodeResized(this);
    }

    private void CheckWriteThreshold(long offset, long bytes)
    {
        long threshold = Volatile.Read(ref _writeThreshold);
        // QEMU's threshold is unsigned: one set at or above 2^63 (-1 read as signed) is never crossed.
        if (threshold == 0 || (ulong)(offset + bytes) <= (ulong)threshold)
            return;
        if (Interlocked.CompareExchange(ref _writeThreshold, 0, threshold) != threshold)
            return;
        Graph.RaiseEvent(new BlockWriteThresholdEvent(NodeName, (ulong)(offset + bytes - threshold), (ulong)threshold));
    }

    private void NoteHighestOffset(long end)
    {
        long current = Volatile.Read(ref _wrHighestOffset);
        while (end > current)
        {
            long seen = Interlocked.CompareExchange(ref _wrHighestOffset, end, current);
            if (seen == current)
                return;
            current = seen;
        }
    }

    /// <summary>Counts a request in; returns the token for <see cref="EndRequest"/>.</summary>
    internal int BeginRequest() => _inFlight.Begin();

    internal void EndRequest(int token) => _inFlight.End(token);

    /// <summary>Records that something was written since the last flush, writing the field only when it changes.</summary>
    private void MarkDirtySinceFlush()
    {
        if (Volatile.Read(ref _dirtySinceFlush) == 0)
            Volatile.Write(ref _dirtySinceFlush, 1);
    }

    /// <summary>Completes when no request is in flight on this node.</summary>
    internal Task WaitIdleAsync() => _inFlight.WaitIdleAsync();

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static ValueTask InvalidRequest(long offset, long bytes) =>
        ValueTask.FromException(new BlockException(Errno.EINVAL, $"Invalid request: offset {offset}, {bytes} bytes"));

    [MethodImpl(MethodImplOptions.NoInlining)]
    private ValueTask NotOpen() =>
        ValueTask.FromException(new BlockException(Errno.ENOMEDIUM, $"Node '{NodeName}' is not open"));

    [MethodImpl(MethodImplOptions.NoInlining)]
    private ValueTask ReadOnlyError() =>
        ValueTask.FromException(new BlockException(Errno.EPERM, $"Node '{NodeName}' is read-only"));

    private static AlignedBuffer CreateZeroBuffer()
    {
        var buffer = AlignedBuffer.Allocate(ZeroBufferSize);
        buffer.Span.Clear();
        return buffer;
    }

    /// <summary>
    /// A request widened to the node's alignment: bounce blocks at both ends, the caller's segments in between.
    /// </summary>
    private sealed class Padding
    {
        private readonly AlignedBuffer _bounce;
        private readonly Memory<byte>[] _segments;
        private readonly long _start;
        private readonly long _lastBlock;
        private readonly int _align;
        private readonly bool _hasHead;
        private readonly bool _hasTail;
        private readonly bool _sameBlock;

        public Padding(BlockNode node, long offset, IoVector buffers)
        {
            _align = (int)(node._alignMask + 1);
            long end = offset + buffers.Length;
            _start = offset & ~node._alignMask;
            long alignedEnd = (end + node._alignMask) & ~node._alignMask;
            _lastBlock = alignedEnd - _align;
            _hasHead = _start != offset;
            _hasTail = alignedEnd != end;
            _sameBlock = _lastBlock == _start;
            _bounce = node.Graph.Buffers.Rent(2 * _align);

            int count = buffers.SegmentCount + 2;
            _segments = ArrayPool<Memory<byte>>.Shared.Rent(count);
            int n = 0;
            if (_hasHead)
                _segments[n++] = _bounce.Memory[..(int)(offset - _start)];
            foreach (var s in buffers)
                _segments[n++] = s;
            if (_hasTail)
            {
                int tailStart = (int)(end - _lastBlock);
                int blockBase = _sameBlock ? 0 : _align;
                _segments[n++] = _bounce.Memory[(blockBase + tailStart)..(blockBase + _align)];
            }
            Vector = new IoVector(new ReadOnlyMemory<Memory<byte>>(_segments, 0, n));
        }

        public IoVector Vector { get; }

        /// <summary>Reads the current content of the partial blocks at both ends (read-modify-write).</summary>
        public async ValueTask ReadEdgesAsync(BlockNode node, NodeDriver impl)
        {
            // One block holding both ends is read once, and reports the tail's events too (as QEMU: a write inside
            // one block with an aligned start is a tail-only read-modify-write).
            bool mergedTail = _hasTail && _sameBlock;
            if (_hasHead || mergedTail)
            {
                if (_hasHead)
                    await node.DebugEventAsync(BlkdebugEvent.PwritevRmwHead).ConfigureAwait(false);
                if (mergedTail)
                    await node.DebugEventAsync(BlkdebugEvent.PwritevRmwTail).ConfigureAwait(false);
                await impl.ReadAsync(_start, new IoVector(_bounce.Memory[.._align]), RequestFlags.None).ConfigureAwait(false);
                if (_hasHead)
                    await node.DebugEventAsync(BlkdebugEvent.PwritevRmwAfterHead).ConfigureAwait(false);
                if (mergedTail)
                    await node.DebugEventAsync(BlkdebugEvent.PwritevRmwAfterTail).ConfigureAwait(false);
            }
            if (_hasTail && !_sameBlock)
            {
                await node.DebugEventAsync(BlkdebugEvent.PwritevRmwTail).ConfigureAwait(false);
                await impl.ReadAsync(_lastBlock, new IoVector(_bounce.Memory.Slice(_align, _align)), RequestFlags.None).ConfigureAwait(false);
                await node.DebugEventAsync(BlkdebugEvent.PwritevRmwAfterTail).ConfigureAwait(false);
            }
        }

        public void Dispose()
        {
            ArrayPool<Memory<byte>>.Shared.Return(_segments, clearArray: true);
            _bounce.Return(clear: true);
        }
    }
}
