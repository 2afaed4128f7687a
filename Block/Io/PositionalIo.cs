using System.Buffers;
using System.Runtime.CompilerServices;
using Block.Interop;

namespace Block.Io;

/// <summary>
/// The blocking system calls every engine ends in, with the loops POSIX asks for: <c>EINTR</c> retried, short reads
/// continued until end of file, short writes continued until done.
/// </summary>
internal static unsafe class PositionalIo
{
    /// <summary>The most iovecs one <c>preadv</c> takes (Linux <c>IOV_MAX</c>).</summary>
    public const int MaxIov = 1024;

    private const int StackIov = 16;

    public static int Read(int fd, IoVector buffers, long offset)
    {
        if (buffers.IsSingleSegment)
            return ReadSingle(fd, buffers.FirstSegment.Span, offset);

        int total = 0;
        while (total < buffers.Length)
        {
            nint n = Vectored(write: false, fd, buffers.Slice(total), offset + total);
            if (n == 0)
                break;
            total += (int)n;
        }
        return total;
    }

    public static void Write(int fd, IoVector buffers, long offset)
    {
        if (buffers.IsSingleSegment)
        {
            WriteSingle(fd, buffers.FirstSegment.Span, offset);
            return;
        }
        int total = 0;
        while (total < buffers.Length)
        {
            nint n = Vectored(write: true, fd, buffers.Slice(total), offset + total);
            if (n == 0)
                ThrowHelper.Throw(Errno.ENOSPC, "pwritev: No space left on device");
            total += (int)n;
        }
    }

    /// <summary>
    /// Reads <paramref name="buffer"/> whole from the page cache with <c>RWF_NOWAIT</c>, without waiting for the disk:
    /// the bytes read (less than the length when part of the range is not cached, or at end of file), -1 when nothing
    /// is cached (EAGAIN), or -2 when the kernel or file system does not take the flag.
    /// </summary>
    public static int TryReadCached(int fd, Span<byte> buffer, long offset)
    {
        fixed (byte* p = buffer)
        {
            var iov = new LibC.IoVec { Base = p, Length = (nuint)buffer.Length };
            while (true)
            {
                nint n = LibC.PReadV2(fd, &iov, 1, offset, LibC.RwfNoWait);
                if (n >= 0)
                    return (int)n;
                int errno = LibC.LastErrno;
                if (errno == (int)Errno.EINTR)
                    continue;
                return errno == (int)Errno.EAGAIN ? -1 : -2;
            }
        }
    }

    private static int ReadSingle(int fd, Span<byte> buffer, long offset)
    {
        int total = 0;
        fixed (byte* p = buffer)
        {
            while (total < buffer.Length)
            {
                nint n = LibC.PRead(fd, p + total, (nuint)(buffer.Length - total), offset + total);
                if (n > 0)
                {
                    total += (int)n;
                    continue;
                }
                if (n == 0)
                    break;
                int errno = LibC.LastErrno;
                if (errno != (int)Errno.EINTR)
                    ThrowHelper.ThrowFromErrno(errno, "pread");
            }
        }
        return total;
    }

    private static void WriteSingle(int fd, ReadOnlySpan<byte> buffer, long offset)
    {
        int total = 0;
        fixed (byte* p = buffer)
        {
            while (total < buffer.Length)
            {
                nint n = LibC.PWrite(fd, p + total, (nuint)(buffer.Length - total), offset + total);
                if (n > 0)
                {
                    total += (int)n;
                    continue;
                }
                if (n == 0)
                    ThrowHelper.Throw(Errno.ENOSPC, "pwrite: No space left on device");
                int errno = LibC.LastErrno;
                if (errno != (int)Errno.EINTR)
                    ThrowHelper.ThrowFromErrno(errno, "pwrite");
            }
        }
    }

    /// <summary>One <c>preadv</c>/<c>pwritev</c> over the first segments of <paramref name="buffers"/> (up to IOV_MAX).</summary>
    private static nint Vectored(bool write, int fd, IoVector buffers, long offset)
    {
        int segments = Math.Min(buffers.SegmentCount, MaxIov);
        if (segments > StackIov)
            return VectoredLarge(write, fd, buffers, offset, segments);

        var handles = default(HandleArray);
        LibC.IoVec* iov = stackalloc LibC.IoVec[StackIov];
        Span<MemoryHandle> handleSpan = handles;
        try
        {
            int n = buffers.Pin(new Span<LibC.IoVec>(iov, StackIov), handleSpan);
            return Syscall(write, fd, iov, n, offset);
        }
        finally
        {
            foreach (ref var h in handleSpan)
                h.Dispose();
        }
    }

    private static nint VectoredLarge(bool write, int fd, IoVector buffers, long offset, int segments)
    {
        var handles = ArrayPool<MemoryHandle>.Shared.Rent(segments);
        var iovs = ArrayPool<LibC.IoVec>.Shared.Rent(segments);
        try
        {
            fixed (LibC.IoVec* iov = iovs)
            {
                int n = buffers.Pin(iovs.AsSpan(0, segments), handles);
                return Syscall(write, fd, iov, n, offset);
            }
        }
        finally
        {
            for (int i = 0; i < segments; i++)
                handles[i].Dispose();
            ArrayPool<MemoryHandle>.Shared.Return(handles, clearArray: true);
            ArrayPool<LibC.IoVec>.Shared.Return(iovs);
        }
    }

    private static nint Syscall(bool write, int fd, LibC.IoVec* iov, int count, long offset)
    {
        while (true)
        {
            nint r = write ? LibC.PWriteV(fd, iov, count, offset) : LibC.PReadV(fd, iov, count, offset);
            if (r >= 0)
                return r;
            int errno = LibC.LastErrno;
            if (errno != (int)Errno.EINTR)
                ThrowHelper.ThrowFromErrno(errno, write ? "pwritev" : "preadv");
        }
    }

    public static void Flush(int fd, bool dataOnly)
    {
        while ((dataOnly ? LibC.FDataSync(fd) : LibC.FSync(fd)) != 0)
        {
            int errno = LibC.LastErrno;
            if (errno != (int)Errno.EINTR)
                ThrowHelper.ThrowFromErrno(errno, dataOnly ? "fdatasync" : "fsync");
        }
    }

    /// <summary>Starts write-out of the file's dirty pages in <c>[offset, offset + length)</c> (0: to the end), without waiting for it.</summary>
    public static void StartWriteback(int fd, long offset, long length)
    {
        while (LibC.SyncFileRange(fd, offset, length, LibC.SYNC_FILE_RANGE_WRITE) != 0)
        {
            int errno = LibC.LastErrno;
            if (errno != (int)Errno.EINTR)
                ThrowHelper.ThrowFromErrno(errno, "sync_file_range");
        }
    }

    public static void Fallocate(int fd, int mode, long offset, long length)
    {
        while (LibC.FAllocate(fd, mode, offset, length) != 0)
        {
            int errno = LibC.LastErrno;
            if (errno == (int)Errno.EINTR)
                continue;
            // EOPNOTSUPP and ENOSYS both mean "this file system cannot": report ENOTSUP so callers fall back.
            if (errno is 95 or 38)
                ThrowHelper.Throw(Errno.ENOTSUP, "fallocate: Operation not supported");
            ThrowHelper.ThrowFromErrno(errno, "fallocate");
        }
    }

    [InlineArray(StackIov)]
    private struct HandleArray
    {
        private MemoryHandle _element;
    }
}
