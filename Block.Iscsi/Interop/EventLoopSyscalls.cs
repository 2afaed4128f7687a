using System.Runtime.InteropServices;

namespace Block.Iscsi.Interop;

/// <summary>The libc calls of the event loop: <c>poll</c> over libiscsi's socket and an <c>eventfd</c> that wakes it.</summary>
internal static unsafe partial class EventLoopSyscalls
{
    private const string Libc = "libc";

    public const short PollIn = 0x001;

    public const int EfdCloexec = 0x80000;
    public const int EfdNonblock = 0x800;

    /// <summary>libc's <c>struct pollfd</c>.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [LibraryImport(Libc, EntryPoint = "poll", SetLastError = true)]
    public static partial int Poll(PollFd* fds, nuint count, int timeoutMs);

    [LibraryImport(Libc, EntryPoint = "eventfd", SetLastError = true)]
    public static partial int EventFd(uint initial, int flags);

    [LibraryImport(Libc, EntryPoint = "read", SetLastError = true)]
    public static partial nint Read(int fd, void* buffer, nuint count);

    [LibraryImport(Libc, EntryPoint = "write", SetLastError = true)]
    public static partial nint Write(int fd, void* buffer, nuint count);

    [LibraryImport(Libc, EntryPoint = "close")]
    public static partial int Close(int fd);
}
