using System.Runtime.InteropServices;

namespace Block.Interop;

/// <summary>
/// The io_uring system calls and kernel structures (linux/io_uring.h), reached through libc's <c>syscall</c>:
/// glibc has no wrappers and the project builds no native library.
/// </summary>
/// <remarks>
/// The system call numbers 425–427 are the same on x86-64 and arm64 (the generic table). Structures are the
/// kernel's fixed-size ABI; only the members the engine uses are named.
/// </remarks>
internal static unsafe partial class IoUring
{
    public const long SysSetup = 425;
    public const long SysEnter = 426;
    public const long SysRegister = 427;

    public const uint SetupClamp = 1u << 4;
    public const uint SetupSubmitAll = 1u << 7;

    public const uint FeatSingleMmap = 1u << 0;
    public const uint FeatNoDrop = 1u << 1;

    public const uint EnterGetEvents = 1u << 0;

    public const long OffSqRing = 0;
    public const long OffCqRing = 0x8000000;
    public const long OffSqes = 0x10000000;

    public const uint RegisterProbe = 8;
    public const ushort OpSupported = 1;

    public const byte OpNop = 0;
    public const byte OpReadv = 1;
    public const byte OpWritev = 2;
    public const byte OpFsync = 3;
    public const byte OpSyncFileRange = 8;
    public const byte OpFallocate = 17;
    public const byte OpRead = 22;
    public const byte OpWrite = 23;

    public const uint FsyncDatasync = 1;

    public const int ProtRead = 0x1;
    public const int ProtWrite = 0x2;
    public const int MapShared = 0x01;
    public const int MapPopulate = 0x8000;
    public static readonly void* MapFailed = (void*)-1;

    /// <summary><c>struct io_sqring_offsets</c>.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct SqRingOffsets
    {
        public uint Head, Tail, RingMask, RingEntries, Flags, Dropped, Array, Resv1;
        public ulong UserAddr;
    }

    /// <summary><c>struct io_cqring_offsets</c>.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct CqRingOffsets
    {
        public uint Head, Tail, RingMask, RingEntries, Overflow, Cqes, Flags, Resv1;
        public ulong UserAddr;
    }

    /// <summary><c>struct io_uring_params</c> (120 bytes).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Params
    {
        public uint SqEntries, CqEntries, Flags, SqThreadCpu, SqThreadIdle, Features, WqFd, Resv0, Resv1, Resv2;
        public SqRingOffsets SqOff;
        public CqRingOffsets CqOff;
    }

    /// <summary><c>struct io_uring_sqe</c> (64 bytes).</summary>
    [StructLayout(LayoutKind.Explicit, Size = 64)]
    public struct Sqe
    {
        [FieldOffset(0)] public byte Opcode;
        [FieldOffset(1)] public byte Flags;
        [FieldOffset(2)] public ushort IoPriority;
        [FieldOffset(4)] public int Fd;
        [FieldOffset(8)] public ulong Offset;
        [FieldOffset(16)] public ulong Address;
        [FieldOffset(24)] public uint Length;
        [FieldOffset(28)] public uint OpFlags;
        [FieldOffset(32)] public ulong UserData;
    }

    /// <summary><c>struct io_uring_cqe</c> (16 bytes).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Cqe
    {
        public ulong UserData;
        public int Result;
        public uint Flags;
    }

    /// <summary><c>struct io_uring_probe</c> header (16 bytes), followed by <c>OpsLength</c> 8-byte entries.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Probe
    {
        public byte LastOp;
        public byte OpsLength;
        public ushort Resv;
        public uint Resv2a, Resv2b, Resv2c;
    }

    /// <summary><c>struct io_uring_probe_op</c> (8 bytes).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct ProbeOp
    {
        public byte Op;
        public byte Resv;
        public ushort Flags;
        public uint Resv2;
    }

    [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
    private static partial long Syscall(long number, long a1, long a2, long a3, long a4, long a5, long a6);

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    public static partial void* Mmap(void* address, nuint length, int protection, int flags, int fd, long offset);

    [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
    public static partial int Munmap(void* address, nuint length);

    /// <summary><c>io_uring_setup(entries, params)</c>: the ring's descriptor, or −1 with errno set.</summary>
    public static int Setup(uint entries, Params* parameters) => (int)Syscall(SysSetup, entries, (long)parameters, 0, 0, 0, 0);

    /// <summary><c>io_uring_enter(fd, toSubmit, minComplete, flags, NULL, 0)</c>: SQEs consumed, or −1 with errno set.</summary>
    public static int Enter(int fd, uint toSubmit, uint minComplete, uint flags) =>
        (int)Syscall(SysEnter, fd, toSubmit, minComplete, flags, 0, 0);

    /// <summary><c>io_uring_register(fd, opcode, arg, count)</c>.</summary>
    public static int Register(int fd, uint opcode, void* argument, uint count) =>
        (int)Syscall(SysRegister, fd, opcode, (long)argument, count, 0, 0);
}
