using System.Runtime.InteropServices;

namespace Block.Interop;

/// <summary>
/// The libc calls the BCL does not offer: <c>open</c> with <c>O_DIRECT</c>, <c>preadv</c>/<c>pwritev</c> over native
/// iovecs, <c>fallocate</c> (hole punching, zero ranges, preallocation), <c>lseek</c> with SEEK_DATA/SEEK_HOLE, OFD
/// byte-range locks through <c>fcntl</c>, and <c>statx</c> for allocated size and direct-I/O alignment.
/// </summary>
/// <remarks>
/// <c>FileOptions</c> on Linux silently drops every flag it does not map, so <c>O_DIRECT</c> is only reachable by opening
/// the file ourselves; the descriptor is then wrapped in a <see cref="Microsoft.Win32.SafeHandles.SafeFileHandle"/>.
/// Constants are Linux x86-64/arm64 values (the generic ABI both share).
/// </remarks>
internal static unsafe partial class LibC
{
    private const string Lib = "libc";

    public const int O_RDONLY = 0x0;
    public const int O_WRONLY = 0x1;
    public const int O_RDWR = 0x2;
    public const int O_CREAT = 0x40;
    public const int O_EXCL = 0x80;
    public const int O_TRUNC = 0x200;
    public const int O_CLOEXEC = 0x80000;
    public const int O_NONBLOCK = 0x800;
    public static readonly int O_DIRECT = RuntimeInformation.ProcessArchitecture is Architecture.Arm64 ? 0x10000 : 0x4000;

    public const int SEEK_SET = 0;
    public const int SEEK_DATA = 3;
    public const int SEEK_HOLE = 4;

    public const int FALLOC_FL_KEEP_SIZE = 0x01;
    public const int FALLOC_FL_PUNCH_HOLE = 0x02;
    public const int FALLOC_FL_ZERO_RANGE = 0x10;

    public const int F_OFD_GETLK = 36;
    public const int F_OFD_SETLK = 37;
    public const short F_RDLCK = 0;
    public const short F_WRLCK = 1;
    public const short F_UNLCK = 2;

    public const int AT_FDCWD = -100;
    public const int AT_EMPTY_PATH = 0x1000;
    public const uint STATX_TYPE = 0x1;
    public const uint STATX_MODE = 0x2;
    public const uint STATX_SIZE = 0x200;
    public const uint STATX_BLOCKS = 0x400;
    public const uint STATX_DIOALIGN = 0x2000;
    public const uint STATX_BASIC_STATS = 0x7ff;

    public const int S_IFMT = 0xF000;
    public const int S_IFREG = 0x8000;
    public const int S_IFDIR = 0x4000;
    public const int S_IFBLK = 0x6000;
    public const int S_IFCHR = 0x2000;

    public const int POSIX_FADV_DONTNEED = 4;

    /// <summary>One element of a scatter-gather list for <c>preadv</c>/<c>pwritev</c>.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct IoVec
    {
        public void* Base;
        public nuint Length;
    }

    /// <summary><c>struct flock</c> (64-bit layout).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Flock
    {
        public short Type;
        public short Whence;
        public long Start;
        public long Length;
        public int Pid;
    }

    /// <summary><c>struct statx</c> (architecture independent, 256 bytes).</summary>
    [StructLayout(LayoutKind.Explicit, Size = 256)]
    public struct Statx
    {
        [FieldOffset(0)] public uint Mask;
        [FieldOffset(4)] public uint BlockSize;
        [FieldOffset(28)] public ushort Mode;
        [FieldOffset(32)] public ulong Ino;
        [FieldOffset(40)] public ulong Size;
        [FieldOffset(48)] public ulong Blocks;
        [FieldOffset(64)] public long AtimeSeconds;
        [FieldOffset(96)] public long CtimeSeconds;
        [FieldOffset(112)] public long MtimeSeconds;
        [FieldOffset(136)] public uint DevMajor;
        [FieldOffset(140)] public uint DevMinor;
        [FieldOffset(152)] public uint DioMemAlign;
        [FieldOffset(156)] public uint DioOffsetAlign;
    }

    [LibraryImport(Lib, EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags, int mode);

    [LibraryImport(Lib, EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport(Lib, EntryPoint = "pread", SetLastError = true)]
    public static partial nint PRead(int fd, byte* buffer, nuint count, long offset);

    /// <summary><c>preadv2</c>'s flag: fail with EAGAIN rather than wait for the disk (data not in the page cache).</summary>
    public const int RwfNoWait = 0x8;

    [LibraryImport(Lib, EntryPoint = "preadv2", SetLastError = true)]
    public static partial nint PReadV2(int fd, IoVec* iov, int iovcnt, long offset, int flags);

    [LibraryImport(Lib, EntryPoint = "pwrite", SetLastError = true)]
    public static partial nint PWrite(int fd, byte* buffer, nuint count, long offset);

    [LibraryImport(Lib, EntryPoint = "preadv", SetLastError = true)]
    public static partial nint PReadV(int fd, IoVec* iov, int iovcnt, long offset);

    [LibraryImport(Lib, EntryPoint = "pwritev", SetLastError = true)]
    public static partial nint PWriteV(int fd, IoVec* iov, int iovcnt, long offset);

    [LibraryImport(Lib, EntryPoint = "fsync", SetLastError = true)]
    public static partial int FSync(int fd);

    [LibraryImport(Lib, EntryPoint = "fdatasync", SetLastError = true)]
    public static partial int FDataSync(int fd);

    /// <summary><c>sync_file_range</c>'s flag: start write-out of the range's dirty pages, without waiting.</summary>
    public const uint SYNC_FILE_RANGE_WRITE = 2;

    [LibraryImport(Lib, EntryPoint = "sync_file_range", SetLastError = true)]
    public static partial int SyncFileRange(int fd, long offset, long length, uint flags);

    [LibraryImport(Lib, EntryPoint = "fallocate", SetLastError = true)]
    public static partial int FAllocate(int fd, int mode, long offset, long length);

    [LibraryImport(Lib, EntryPoint = "lseek", SetLastError = true)]
    public static partial long LSeek(int fd, long offset, int whence);

    [LibraryImport(Lib, EntryPoint = "ftruncate", SetLastError = true)]
    public static partial int FTruncate(int fd, long length);

    [LibraryImport(Lib, EntryPoint = "fcntl", SetLastError = true)]
    public static partial int FcntlLock(int fd, int command, Flock* lockDescription);

    [LibraryImport(Lib, EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int StatX(int dirFd, string path, int flags, uint mask, Statx* result);

    [LibraryImport(Lib, EntryPoint = "posix_fadvise", SetLastError = false)]
    public static partial int PosixFadvise(int fd, long offset, long length, int advice);

    public const ulong FS_IOC_GETFLAGS = 0x80086601;
    public const ulong FS_IOC_SETFLAGS = 0x40086602;
    public const int FS_NOCOW_FL = 0x00800000;
    public const ulong FS_IOC_FSGETXATTR = 0x801c581f;
    public const ulong FS_IOC_FSSETXATTR = 0x401c5820;
    public const uint FS_XFLAG_EXTSIZE = 0x800;
    public const ulong BLKGETSIZE64 = 0x80081272;

    /// <summary><c>struct fsxattr</c> (28 bytes).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct FsXAttr
    {
        public uint XFlags;
        public uint ExtSize;
        public uint NExtents;
        public uint ProjId;
        public uint CowExtSize;
        public ulong Pad;
    }

    [LibraryImport(Lib, EntryPoint = "ioctl", SetLastError = true)]
    public static partial int Ioctl(int fd, ulong request, void* argument);

    /// <summary>The errno of the last failed call on this thread.</summary>
    public static int LastErrno => Marshal.GetLastPInvokeError();
}
