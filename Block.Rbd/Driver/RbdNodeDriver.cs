using System.Runtime.InteropServices;
using Block.Drivers;
using Block.Graph;
using Block.Io;
using Block.Qapi;
using Block.Rbd.Interop;

namespace Block.Rbd.Driver;

/// <summary>
/// One open <c>rbd</c> node: every read, write, write-zeroes, discard and flush is one <c>rbd_aio_*</c> call whose
/// completion resumes the caller (<see cref="RbdRequest"/>), so any number of requests are in flight without a
/// thread each.
/// </summary>
internal sealed class RbdNodeDriver : NodeDriver
{
    /// <summary>The status callback's "stop iterating" return: any negative value that librbd does not use itself.</summary>
    private const int StopIteration = -9000;

    private readonly RbdConnection _connection;
    private readonly string _filename;
    private readonly long _objectSize;
    private readonly Stack<RbdRequest> _pool = new();
    private nint _image;
    private long _length;
    private readonly SemaphoreSlim _growth = new(1, 1);

    public RbdNodeDriver(BlockNode node, RbdConnection connection, nint image, long length, long objectSize, string filename)
        : base(node)
    {
        _connection = connection;
        _image = image;
        _length = length;
        _objectSize = objectSize;
        _filename = filename;
    }

    public override long Length => Volatile.Read(ref _length);

    public override string Filename => _filename;

    public override RequestFlags SupportedZeroFlags => RequestFlags.MayUnmap;

    /// <remarks>librbd cannot tell how much of the pool an image uses cheaply: <c>qemu-img info</c> says "disk size: unavailable".</remarks>
    public override long? AllocatedSize => null;

    /// <summary>The object size, which QEMU reports as the cluster size.</summary>
    public override long? ClusterSize => _objectSize;

    public override unsafe ValueTask ReadAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        if (buffers.Length == 0)
            return default;
        var request = Rent();
        var iov = request.Pin(buffers, out int count);
        nint completion = request.Begin(this, "read", buffers.Length);
        int rc = LibRbd.AioReadv(_image, iov, count, (ulong)offset, completion);
        return rc < 0 ? request.Refused(completion, rc) : request.Task;
    }

    public override ValueTask WriteAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        if (buffers.Length == 0)
            return default;
        if (offset + buffers.Length > Volatile.Read(ref _length))
            return GrowThenWriteAsync(offset, buffers);
        return StartWrite(offset, buffers);
    }

    /// <summary>
    /// A write (or write-zeroes) past the end grows the image first, as QEMU's rbd does: an rbd image has a fixed size, and a format
    /// above it (qcow2 allocating a cluster) writes past the end as it would on a file.
    /// </summary>
    private async ValueTask GrowThenWriteAsync(long offset, IoVector buffers)
    {
        await GrowAsync(offset + buffers.Length).ConfigureAwait(false);
        await StartWrite(offset, buffers).ConfigureAwait(false);
    }

    private async ValueTask GrowAsync(long end)
    {
        await _growth.WaitAsync().ConfigureAwait(false);
        try
        {
            if (end > Volatile.Read(ref _length))
            {
                int rc = await Task.Run(() => LibRbd.Resize(_image, (ulong)end)).ConfigureAwait(false);
                RbdErrors.Check("failed to grow rbd image for a write past its end", rc);
                Volatile.Write(ref _length, end);
            }
        }
        finally
        {
            _growth.Release();
        }
    }

    private unsafe ValueTask StartWrite(long offset, IoVector buffers)
    {
        var request = Rent();
        var iov = request.Pin(buffers, out int count);
        nint completion = request.Begin(this, "write", -1);
        int rc = LibRbd.AioWritev(_image, iov, count, (ulong)offset, completion);
        return rc < 0 ? request.Refused(completion, rc) : request.Task;
    }

    /// <remarks>
    /// As QEMU: without <see cref="RequestFlags.MayUnmap"/> librbd is asked to keep the objects allocated
    /// (<c>RBD_WRITE_ZEROES_FLAG_THICK_PROVISION</c>); with it, librbd may discard whole objects.
    /// </remarks>
    public override ValueTask WriteZeroesAsync(long offset, long length, RequestFlags flags)
    {
        if (offset + length > Volatile.Read(ref _length))
            return GrowThenWriteZeroesAsync(offset, length, flags);
        return StartWriteZeroes(offset, length, flags);
    }

    private async ValueTask GrowThenWriteZeroesAsync(long offset, long length, RequestFlags flags)
    {
        await GrowAsync(offset + length).ConfigureAwait(false);
        await StartWriteZeroes(offset, length, flags).ConfigureAwait(false);
    }

    private ValueTask StartWriteZeroes(long offset, long length, RequestFlags flags)
    {
        const int thickProvision = 1;
        var request = Rent();
        nint completion = request.Begin(this, "write zeroes", -1);
        int rc = LibRbd.AioWriteZeroes(_image, (ulong)offset, (nuint)length, completion, (flags & RequestFlags.MayUnmap) != 0 ? 0 : thickProvision, 0);
        return rc < 0 ? request.Refused(completion, rc) : request.Task;
    }

    public override ValueTask DiscardAsync(long offset, long length)
    {
        var request = Rent();
        nint completion = request.Begin(this, "discard", -1);
        int rc = LibRbd.AioDiscard(_image, (ulong)offset, (ulong)length, completion);
        return rc < 0 ? request.Refused(completion, rc) : request.Task;
    }

    public override ValueTask FlushToDiskAsync()
    {
        var request = Rent();
        nint completion = request.Begin(this, "flush", -1);
        int rc = LibRbd.AioFlush(_image, completion);
        return rc < 0 ? request.Refused(completion, rc) : request.Task;
    }

    /// <summary>Resizes the image (growing or shrinking), as QEMU: only without preallocation.</summary>
    public override async ValueTask TruncateAsync(long length, PreallocMode preallocation, bool exact)
    {
        if (preallocation != PreallocMode.Off)
            throw new BlockException(Errno.ENOTSUP, $"Unsupported preallocation mode '{preallocation.ToString().ToLowerInvariant()}'");
        int rc = await Task.Run(() => LibRbd.Resize(_image, (ulong)length)).ConfigureAwait(false);
        RbdErrors.Check("failed to resize rbd image", rc);
        Volatile.Write(ref _length, length);
    }

    /// <summary>
    /// The allocation status from the image's object map (fast-diff): the run of existing objects at
    /// <paramref name="offset"/> is data, the run before the next existing object reads as zeroes. Without a valid
    /// fast-diff map everything is data, as in QEMU.
    /// </summary>
    public override unsafe ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length, bool wantZero)
    {
        var data = new BlockStatus(BlockStatusFlags.Data | BlockStatusFlags.OffsetValid, length, offset, Node);
        if (LibRbd.GetFeatures(_image, out ulong features) < 0 || (features & LibRbd.FeatureFastDiff) == 0)
            return new(data);
        if (LibRbd.GetFlags(_image, out ulong imageFlags) < 0 || (imageFlags & LibRbd.FlagFastDiffInvalid) != 0)
            return new(data);
        DiffExtent extent = default;
        int rc = LibRbd.DiffIterate2(_image, 0, (ulong)offset, (ulong)length, 1, 1, &OnDiffExtent, (nint)(&extent));
        if (rc < 0 && rc != StopIteration)
            return ValueTask.FromException<BlockStatus>(RbdErrors.Exception("rbd block status", rc));
        if (extent.Found == 0)
            return new(new BlockStatus(BlockStatusFlags.Zero | BlockStatusFlags.OffsetValid, length, offset, Node));
        long start = Math.Max(extent.Offset, offset);
        long end = Math.Min(extent.Offset + extent.Length, offset + length);
        if (start > offset)
            return new(new BlockStatus(BlockStatusFlags.Zero | BlockStatusFlags.OffsetValid, start - offset, offset, Node));
        return new(data with { Bytes = Math.Max(end - offset, 1) });
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct DiffExtent
    {
        public long Offset;
        public long Length;
        public int Found;
    }

    /// <summary>Records the first existing extent and stops the iteration.</summary>
    [UnmanagedCallersOnly]
    private static unsafe int OnDiffExtent(ulong offset, nuint length, int exists, nint arg)
    {
        if (exists == 0)
            return 0;
        var extent = (DiffExtent*)arg;
        extent->Offset = (long)offset;
        extent->Length = (long)length;
        extent->Found = 1;
        return StopIteration;
    }

    private RbdRequest Rent()
    {
        lock (_pool)
        {
            if (_pool.TryPop(out var request))
                return request;
        }
        return new RbdRequest();
    }

    internal void Return(RbdRequest request)
    {
        lock (_pool)
            _pool.Push(request);
    }

    /// <summary>
    /// Closes the image and the connection off the caller's path, waiting at most the operation timeout and a bit:
    /// closing an image whose cluster died blocks in librbd (it flushes and releases its lock), and a close must not
    /// hang the graph.
    /// </summary>
    public override async ValueTask DisposeAsync()
    {
        nint image = Interlocked.Exchange(ref _image, 0);
        if (image != 0)
        {
            var close = Task.Run(() =>
            {
                LibRbd.Close(image);
                _connection.Dispose();
                lock (_pool)
                {
                    while (_pool.TryPop(out var request))
                        request.Free();
                }
            });
            var limit = TimeSpan.FromSeconds(_connection.OpTimeoutSeconds + 5);
            if (await Task.WhenAny(close, Task.Delay(limit)).ConfigureAwait(false) != close)
                Node.Graph.Warn($"rbd {_filename}: closing the image did not finish within {limit.TotalSeconds:0} s; left behind");
        }
        await base.DisposeAsync().ConfigureAwait(false);
    }
}
