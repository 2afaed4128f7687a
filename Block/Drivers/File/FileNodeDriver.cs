using System.Buffers;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Block.Graph;
using Block.Interop;
using Block.Io;
using Block.Locking;
using Block.Qapi;
using Microsoft.Win32.SafeHandles;

namespace Block.Drivers.File;

/// <summary>
/// One open file: positional I/O through an <see cref="IIoEngine"/>, hole punching and zero ranges through
/// <c>fallocate</c>, allocation status through <c>SEEK_DATA</c>/<c>SEEK_HOLE</c>, preallocation, and QEMU-compatible
/// locking.
/// </summary>
/// <remarks>
/// <para>With <c>cache.direct=on</c> the file is opened with <c>O_DIRECT</c> through libc. Requests are then aligned to
/// the device's direct-I/O alignment (from <c>statx</c>, else 4 KiB) by the request path, and buffers that are not
/// aligned native memory are bounced here: guest memory arriving as native <see cref="Memory{T}"/> goes to the
/// disk without a copy. File systems that refuse <c>O_DIRECT</c> (tmpfs, some FUSE mounts) get a warning and a
/// buffered open instead of a failure.</para>
/// <para>Reads past the end of the file return zeroes; writes past it grow the file.</para>
/// </remarks>
internal sealed class FileNodeDriver : NodeDriver
{
    // linux/cdrom.h
    private const ulong CdromEject = 0x5309;
    private const ulong CdromCloseTray = 0x5319;
    private const ulong CdromDriveStatus = 0x5326;
    private const ulong CdromLockDoor = 0x5329;
    private const nint CdslCurrent = int.MaxValue;
    private const int CdsDiscOk = 4;

    private readonly SafeFileHandle _handle;
    private readonly int _fd;
    private readonly IIoEngine _engine;
    private readonly string _filename;
    private readonly bool _direct;
    private readonly bool _hostDevice;
    private readonly bool _cdrom;
    private readonly bool _writable;
    private readonly ImageLock? _lock;
    private readonly BlockLimits _limits;
    private long _length;
    private bool _zeroRangeSupported = true;
    private bool _seekDataSupported = true;

    private FileNodeDriver(BlockNode node, SafeFileHandle handle, IIoEngine engine, string filename, bool direct, bool hostDevice,
        bool cdrom, bool writable, ImageLock? imageLock, long length, BlockLimits limits)
        : base(node)
    {
        _handle = handle;
        _fd = (int)handle.DangerousGetHandle();
        _engine = engine;
        _filename = filename;
        _direct = direct;
        _hostDevice = hostDevice;
        _cdrom = cdrom;
        _writable = writable;
        _lock = imageLock;
        _length = length;
        _limits = limits;
    }

    public override BlockLimits Limits => _limits;

    public override RequestFlags SupportedZeroFlags => RequestFlags.MayUnmap;

    // A CD-ROM's length is the disc's, so it is asked each time (QEMU's has_variable_length): a new disc has its own.
    public override long Length => _cdrom ? Math.Max(0, LibC.LSeek(_fd, 0, 2)) : Volatile.Read(ref _length);

    // QEMU's Linux host_cdrom: the drive reports a disc ready, asked each time, as a guest's TEST UNIT READY asks.
    public override unsafe bool IsInserted =>
        !_cdrom || LibC.Ioctl(_fd, CdromDriveStatus, (void*)CdslCurrent) == CdsDiscOk;

    public override unsafe void Eject(bool eject)
    {
        if (!_cdrom)
            return;
        if (LibC.Ioctl(_fd, eject ? CdromEject : CdromCloseTray, null) < 0)
            Node.Graph.Warn($"{(eject ? "CDROMEJECT" : "CDROMCLOSETRAY")}: {ErrnoText.Describe((Errno)LibC.LastErrno)}");
    }

    // A refused lock is not reported, as in QEMU: a desktop that auto-mounts the disc makes the drive refuse it.
    public override unsafe void LockMedium(bool locked)
    {
        if (_cdrom)
            LibC.Ioctl(_fd, CdromLockDoor, (void*)(nint)(locked ? 1 : 0));
    }

    public override string Filename => _filename;

    // QEMU's host_cdrom has no driver info, so qemu-img info shows no dirty flag for it.
    public override bool HasDriverInfo => !_cdrom;

    public override unsafe long? AllocatedSize
    {
        get
        {
            LibC.Statx st;
            if (LibC.StatX(_fd, string.Empty, LibC.AT_EMPTY_PATH, LibC.STATX_BLOCKS, &st) != 0)
                return null;
            return (long)st.Blocks * 512;
        }
    }

    public static unsafe FileNodeDriver Open(BlockNode node, BlockdevOptionsFile options, IIoEngine engine, bool hostDevice, bool cdrom = false)
    {
        string filename = options.Filename;
        if (filename.Length == 0)
            throw new BlockException(Errno.EINVAL, "The 'file' block driver requires a file name");
        bool writable = !node.ReadOnly;
        bool direct = node.CacheDirect;
        // A CD-ROM drive with no disc refuses a blocking open; O_NONBLOCK opens it anyway, as QEMU's host_cdrom does.
        int flags = (writable ? LibC.O_RDWR : LibC.O_RDONLY) | LibC.O_CLOEXEC | (cdrom ? LibC.O_NONBLOCK : 0);
        int fd = LibC.Open(filename, flags | (direct ? LibC.O_DIRECT : 0), 0);
        if (fd < 0 && direct && LibC.LastErrno == (int)Errno.EINVAL)
        {
            node.Graph.Warn($"'{filename}': the file system does not support O_DIRECT; falling back to cache.direct=off");
            direct = false;
            node.CacheDirect = false;
            fd = LibC.Open(filename, flags, 0);
        }
        if (fd < 0)
        {
            var errno = (Errno)LibC.LastErrno;
            throw new BlockException(errno, $"Could not open '{filename}': {ErrnoText.Describe(errno)}");
        }
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        try
        {
            LibC.Statx st;
            if (LibC.StatX(fd, string.Empty, LibC.AT_EMPTY_PATH, LibC.STATX_TYPE | LibC.STATX_SIZE | LibC.STATX_DIOALIGN, &st) != 0)
            {
                var errno = (Errno)LibC.LastErrno;
                throw new BlockException(errno, $"Could not stat '{filename}': {ErrnoText.Describe(errno)}");
            }
            int type = st.Mode & LibC.S_IFMT;
            long length;
            if (cdrom)
            {
                if (type != LibC.S_IFBLK && type != LibC.S_IFCHR)
                    throw new BlockException(Errno.EINVAL, $"'host_cdrom' driver requires '{filename}' to be either a character or block device");
                length = 0;
            }
            else if (hostDevice)
            {
                if (type != LibC.S_IFBLK && type != LibC.S_IFCHR)
                    throw new BlockException(Errno.EINVAL, $"'host_device' driver expects either a character or block device");
                length = LibC.LSeek(fd, 0, 2);
                if (length < 0)
                    length = 0;
            }
            else
            {
                if (type != LibC.S_IFREG)
                    throw new BlockException(Errno.EINVAL, $"'file' driver requires '{filename}' to be a regular file");
                length = (long)st.Size;
            }

            var limits = new BlockLimits { MaxIov = PositionalIo.MaxIov };
            if (direct)
            {
                bool dioKnown = (st.Mask & LibC.STATX_DIOALIGN) != 0 && st.DioOffsetAlign != 0;
                int requestAlign = dioKnown ? (int)Math.Max(512, st.DioOffsetAlign) : 4096;
                int memoryAlign = dioKnown && st.DioMemAlign != 0 ? (int)Math.Max(st.DioMemAlign, 512) : 4096;
                limits = limits with { RequestAlignment = requestAlign, MemoryAlignment = memoryAlign };
            }

            ImageLock? imageLock = null;
            var locking = options.Locking ?? OnOffAuto.Auto;
            if (locking != OnOffAuto.Off)
            {
                if (ImageLock.IsSupported(fd))
                {
                    imageLock = new ImageLock(fd, filename);
                }
                else if (locking == OnOffAuto.On)
                {
                    throw new BlockException(Errno.ENOTSUP, "Failed to lock the image: OFD locks are not supported on this file system");
                }
            }
            return new FileNodeDriver(node, handle, engine, filename, direct, hostDevice || cdrom, cdrom, writable, imageLock, length, limits);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    public override void SetPermissions(BlockPermissions permissions, BlockPermissions shared) =>
        _lock?.Apply(permissions, shared);

    public override ValueTask ReadAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        if (_cdrom && !IsInserted)
            return ValueTask.FromException(NoDisc());
        if (_direct && !IsDirectAligned(buffers))
            return ReadBouncedAsync(offset, buffers);
        ValueTask<int> task;
        try
        {
            task = _direct ? _engine.ReadDirectAsync(_fd, buffers, offset) : _engine.ReadAsync(_fd, buffers, offset);
        }
        catch (Exception e)
        {
            return ValueTask.FromException(e);
        }
        if (task.IsCompletedSuccessfully)
        {
            int n = task.Result;
            if (n < buffers.Length)
                buffers.Slice(n).Clear();
            return default;
        }
        return ReadCompleteAsync(task, buffers);
    }

    /// <summary>Zeroes what a short read (end of file) left of <paramref name="buffers"/> once <paramref name="task"/> completes.</summary>
    private static ValueTask ReadCompleteAsync(ValueTask<int> task, IoVector buffers) =>
        ValueTaskContinuation<IoVector>.Then(task, buffers, s_clearTail);

    private static readonly Func<IoVector, int, Exception?, ValueTask> s_clearTail = static (buffers, n, error) =>
    {
        if (error is null && n < buffers.Length)
            buffers.Slice(n).Clear();
        return ValueTaskContinuation<IoVector>.Propagate(error);
    };

    private async ValueTask ReadBouncedAsync(long offset, IoVector buffers)
    {
        var bounce = Node.Graph.Buffers.Rent(buffers.Length);
        try
        {
            var memory = bounce.Memory[..buffers.Length];
            int n = await _engine.ReadDirectAsync(_fd, new IoVector(memory), offset).ConfigureAwait(false);
            memory.Span[n..].Clear();
            buffers.CopyFrom(memory.Span);
        }
        finally
        {
            bounce.Return(clear: true);
        }
    }

    public override ValueTask WriteAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        if (_cdrom && !IsInserted)
            return ValueTask.FromException(NoDisc());
        if (_direct && !IsDirectAligned(buffers))
            return WriteBouncedAsync(offset, buffers);
        ValueTask task;
        try
        {
            task = _engine.WriteAsync(_fd, buffers, offset);
        }
        catch (Exception e)
        {
            return ValueTask.FromException(e);
        }
        long end = offset + buffers.Length;
        if (task.IsCompletedSuccessfully)
        {
            task.GetAwaiter().GetResult();
            GrowTo(end);
            return default;
        }
        return WriteCompleteAsync(task, end);
    }

    /// <summary>Notes the file's new end once <paramref name="task"/> has written up to it.</summary>
    private ValueTask WriteCompleteAsync(ValueTask task, long end) =>
        ValueTaskContinuation<(FileNodeDriver Driver, long End)>.Then(task, (this, end), s_grow);

    private static readonly Func<(FileNodeDriver Driver, long End), int, Exception?, ValueTask> s_grow = static (s, _, error) =>
    {
        if (error is null)
            s.Driver.GrowTo(s.End);
        return ValueTaskContinuation<(FileNodeDriver, long)>.Propagate(error);
    };

    private async ValueTask WriteBouncedAsync(long offset, IoVector buffers)
    {
        var bounce = Node.Graph.Buffers.Rent(buffers.Length);
        try
        {
            var memory = bounce.Memory[..buffers.Length];
            buffers.CopyTo(memory.Span);
            await _engine.WriteAsync(_fd, new IoVector(memory), offset).ConfigureAwait(false);
            GrowTo(offset + buffers.Length);
        }
        finally
        {
            bounce.Return(clear: true);
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    public override async ValueTask WriteZeroesAsync(long offset, long length, RequestFlags flags)
    {
        long end = offset + length;
        if ((flags & RequestFlags.MayUnmap) != 0)
        {
            try
            {
                // A punched hole reads as zeroes, so it serves a write-zeroes that may unmap.
                await _engine.FallocateAsync(_fd, LibC.FALLOC_FL_PUNCH_HOLE | LibC.FALLOC_FL_KEEP_SIZE, offset, length).ConfigureAwait(false);
                if (end > Length)
                    Truncate(end);
                return;
            }
            catch (BlockException e) when (e.Errno == Errno.ENOTSUP)
            {
            }
        }
        if (_zeroRangeSupported)
        {
            try
            {
                await _engine.FallocateAsync(_fd, LibC.FALLOC_FL_ZERO_RANGE, offset, length).ConfigureAwait(false);
                GrowTo(end);
                return;
            }
            catch (BlockException e) when (e.Errno == Errno.ENOTSUP)
            {
                _zeroRangeSupported = false;
            }
        }
        if (!_hostDevice && offset >= Length)
        {
            // Growing the file is a write of zeroes that costs nothing.
            Truncate(end);
            return;
        }
        throw new BlockException(Errno.ENOTSUP, "write-zeroes not supported by the file system");
    }

    public override ValueTask DiscardAsync(long offset, long length)
    {
        long end = Math.Min(offset + length, Length);
        if (end <= offset)
            return default;
        return _engine.FallocateAsync(_fd, LibC.FALLOC_FL_PUNCH_HOLE | LibC.FALLOC_FL_KEEP_SIZE, offset, end - offset);
    }

    private BlockException NoDisc() => new(Errno.ENOMEDIUM, $"No medium found in '{_filename}'");

    public override ValueTask FlushToDiskAsync() => _engine.FlushAsync(_fd, dataOnly: true);

    /// <remarks>A file opened with <c>O_DIRECT</c> has no dirty pages, and a read-only one none of ours: nothing to start.</remarks>
    public override ValueTask StartWritebackAsync() => _writable && !_direct ? _engine.StartWritebackAsync(_fd, 0, 0) : default;

    public override ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length, bool wantZero)
    {
        const BlockStatusFlags data = BlockStatusFlags.Data | BlockStatusFlags.OffsetValid | BlockStatusFlags.Allocated;
        const BlockStatusFlags hole = BlockStatusFlags.Zero | BlockStatusFlags.OffsetValid | BlockStatusFlags.Allocated;
        if (!wantZero || !_seekDataSupported || _hostDevice)
            return new(new BlockStatus(data, length, offset, Node));

        long dataStart = LibC.LSeek(_fd, offset, LibC.SEEK_DATA);
        if (dataStart < 0)
        {
            int errno = LibC.LastErrno;
            if (errno == (int)Errno.ENXIO)
                return new(new BlockStatus(hole, length, offset, Node));
            if (errno == (int)Errno.EINVAL || errno == (int)Errno.ENOTSUP)
                _seekDataSupported = false;
            return new(new BlockStatus(data, length, offset, Node));
        }
        if (dataStart > offset)
            return new(new BlockStatus(hole, Math.Min(length, dataStart - offset), offset, Node));

        long holeStart = LibC.LSeek(_fd, offset, LibC.SEEK_HOLE);
        if (holeStart < 0 || holeStart <= offset)
            return new(new BlockStatus(data, length, offset, Node));
        return new(new BlockStatus(data, Math.Min(length, holeStart - offset), offset, Node));
    }

    public override async ValueTask TruncateAsync(long length, PreallocMode preallocation, bool exact)
    {
        if (_hostDevice)
        {
            if (length > Length)
                throw new BlockException(Errno.EINVAL, "Cannot grow device files");
            if (exact && length != Length)
                throw new BlockException(Errno.ENOTSUP, "Cannot resize device files");
            return;
        }
        if (!_writable)
            throw new BlockException(Errno.EACCES, "Image is read-only");
        long current = Length;
        if (preallocation != PreallocMode.Off && length < current)
            throw new BlockException(Errno.ENOTSUP, "Cannot use preallocation for shrinking files");
        switch (preallocation)
        {
            case PreallocMode.Off:
                Truncate(length);
                break;
            case PreallocMode.Falloc:
                if (length > current)
                {
                    await _engine.FallocateAsync(_fd, 0, current, length - current).ConfigureAwait(false);
                    GrowTo(length);
                }
                break;
            case PreallocMode.Full:
                await WriteZeroBytesAsync(current, length - current).ConfigureAwait(false);
                break;
            default:
                throw new BlockException(Errno.ENOTSUP, $"Unsupported preallocation mode: {QapiEnum<PreallocMode>.ToWire(preallocation)}");
        }
    }

    private async ValueTask WriteZeroBytesAsync(long offset, long bytes)
    {
        const int chunk = 1 << 20;
        var buffer = Node.Graph.Buffers.Rent(chunk);
        try
        {
            buffer.Span[..chunk].Clear();
            while (bytes > 0)
            {
                int n = (int)Math.Min(chunk, bytes);
                if (_direct && (n & (_limits.RequestAlignment - 1)) != 0)
                {
                    // The unaligned tail of a preallocation: grow with ftruncate; the block it ends in is already written.
                    Truncate(offset + n);
                    break;
                }
                await _engine.WriteAsync(_fd, new IoVector(buffer.Memory[..n]), offset).ConfigureAwait(false);
                offset += n;
                bytes -= n;
                GrowTo(offset);
            }
        }
        finally
        {
            buffer.Return(clear: false);
        }
    }

    private void Truncate(long length)
    {
        while (LibC.FTruncate(_fd, length) != 0)
        {
            int errno = LibC.LastErrno;
            if (errno != (int)Errno.EINTR)
                throw new BlockException((Errno)errno, $"Could not resize file: {ErrnoText.Describe((Errno)errno)}");
        }
        Volatile.Write(ref _length, length);
    }

    private void GrowTo(long end)
    {
        long current = Volatile.Read(ref _length);
        while (end > current)
        {
            long seen = Interlocked.CompareExchange(ref _length, end, current);
            if (seen == current)
                return;
            current = seen;
        }
    }

    /// <summary>True if every segment is aligned native memory that O_DIRECT can take as it is.</summary>
    private unsafe bool IsDirectAligned(IoVector buffers)
    {
        int memMask = _limits.MemoryAlignment - 1;
        int lenMask = _limits.RequestAlignment - 1;
        foreach (var segment in buffers)
        {
            // Managed arrays can move between this check and the system call; only native memory is stable.
            if (!MemoryMarshal.TryGetMemoryManager<byte, MemoryManager<byte>>(segment, out _))
                return false;
            using var pin = segment.Pin();
            if (((nint)pin.Pointer & memMask) != 0 || (segment.Length & lenMask) != 0)
                return false;
        }
        return true;
    }

    public override ValueTask DisposeAsync()
    {
        _lock?.Release();
        _handle.Dispose();
        return base.DisposeAsync();
    }

    /// <summary>Creates (or truncates) a file the way QEMU's file protocol does, and allocates its first block.</summary>
    internal static async ValueTask CreateFileAsync(BlockGraph graph, string filename, long size, PreallocMode prealloc, bool nocow,
        ulong extentSizeHint, bool hintExplicit, CancellationToken cancellationToken)
    {
        int fd = LibC.Open(filename, LibC.O_RDWR | LibC.O_CREAT | LibC.O_CLOEXEC, Convert.ToInt32("644", 8));
        if (fd < 0)
        {
            var errno = (Errno)LibC.LastErrno;
            throw new BlockException(errno, $"Could not create '{filename}': {ErrnoText.Describe(errno)}");
        }
        using var handle = new SafeFileHandle(fd, ownsHandle: true);
        var imageLock = ImageLock.IsSupported(fd) ? new ImageLock(fd, filename) : null;
        imageLock?.Apply(BlockPermissions.Write | BlockPermissions.Resize, BlockPermissions.All & ~BlockPermissions.Resize);
        try
        {
            if (nocow)
                SetNoCow(fd);
            if (extentSizeHint > 0 && !SetExtentSizeHint(fd, (uint)extentSizeHint) && hintExplicit)
                graph.Warn($"Failed to set extent size hint for '{filename}'");
            if (LibC.FTruncate(fd, 0) != 0)
            {
                var errno = (Errno)LibC.LastErrno;
                throw new BlockException(errno, $"Could not resize file: {ErrnoText.Describe(errno)}");
            }
            var engine = graph.GetEngine(BlockdevAioOptions.Inline);
            switch (prealloc)
            {
                case PreallocMode.Falloc when size > 0:
                    try
                    {
                        await engine.FallocateAsync(fd, 0, 0, size).ConfigureAwait(false);
                    }
                    catch (BlockException e) when (e.Errno == Errno.ENOTSUP)
                    {
                        throw new BlockException(Errno.ENOTSUP, "Could not preallocate data for the new file: Operation not supported");
                    }
                    break;
                case PreallocMode.Full when size > 0:
                    var zeros = graph.Buffers.Rent(1 << 20);
                    try
                    {
                        zeros.Span[..(1 << 20)].Clear();
                        for (long pos = 0; pos < size; pos += 1 << 20)
                        {
                            cancellationToken.ThrowIfCancellationRequested();
                            int n = (int)Math.Min(1 << 20, size - pos);
                            await engine.WriteAsync(fd, new IoVector(zeros.Memory[..n]), pos).ConfigureAwait(false);
                        }
                    }
                    finally
                    {
                        zeros.Return(clear: false);
                    }
                    break;
                default:
                    if (LibC.FTruncate(fd, size) != 0)
                    {
                        var errno = (Errno)LibC.LastErrno;
                        throw new BlockException(errno, $"Could not resize file: {ErrnoText.Describe(errno)}");
                    }
                    break;
            }
            if (size > 0 && prealloc != PreallocMode.Full)
            {
                // Allocating the first block lets later O_DIRECT opens probe alignment on real data, as QEMU does;
                // `qemu-img map` of a new raw image therefore shows one 4 KiB data extent at 0.
                int first = (int)Math.Min(size, 4096);
                var block = graph.Buffers.Rent(first);
                try
                {
                    block.Span[..first].Clear();
                    await engine.WriteAsync(fd, new IoVector(block.Memory[..first]), 0).ConfigureAwait(false);
                }
                finally
                {
                    block.Return(clear: false);
                }
            }
        }
        finally
        {
            // The lock bytes go before the descriptor closes: a child process forked meanwhile by another thread keeps
            // the open file description, and its locks, alive until it execs, and would make the opening of the new
            // image fail for that moment with a lock conflict.
            imageLock?.Apply(BlockPermissions.None, BlockPermissions.All);
        }
    }

    private static unsafe void SetNoCow(int fd)
    {
        int attributes = 0;
        if (LibC.Ioctl(fd, LibC.FS_IOC_GETFLAGS, &attributes) == 0 && (attributes & LibC.FS_NOCOW_FL) == 0)
        {
            attributes |= LibC.FS_NOCOW_FL;
            // Only btrfs knows the flag; elsewhere the call fails and, as in QEMU, that is not an error.
            _ = LibC.Ioctl(fd, LibC.FS_IOC_SETFLAGS, &attributes);
        }
    }

    private static unsafe bool SetExtentSizeHint(int fd, uint hint)
    {
        LibC.FsXAttr attr;
        if (LibC.Ioctl(fd, LibC.FS_IOC_FSGETXATTR, &attr) != 0)
            return false;
        attr.XFlags |= LibC.FS_XFLAG_EXTSIZE;
        attr.ExtSize = hint;
        return LibC.Ioctl(fd, LibC.FS_IOC_FSSETXATTR, &attr) == 0;
    }
}
