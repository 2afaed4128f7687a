using System.Runtime.InteropServices;

namespace Block.Nfs.Interop;

/// <summary>The libc calls of the event loop: <c>poll</c>, an <c>eventfd</c> to wake it, and <c>setns</c>.</summary>
internal static unsafe partial class LibC
{
    public const short PollIn = 0x001;
    public const short PollOut = 0x004;
    public const int EfdCloexec = 0x80000;
    public const int EfdNonblock = 0x800;
    public const int OReadOnly = 0;
    public const int OReadWrite = 2;
    public const int OCloexec = 0x80000;
    public const int CloneNewNet = 0x40000000;

    [StructLayout(LayoutKind.Sequential)]
    public struct PollFd
    {
        public int Fd;
        public short Events;
        public short Revents;
    }

    [LibraryImport("libc", EntryPoint = "poll", SetLastError = true)]
    public static partial int Poll(PollFd* fds, nuint count, int timeoutMilliseconds);

    [LibraryImport("libc", EntryPoint = "eventfd", SetLastError = true)]
    public static partial int EventFd(uint initial, int flags);

    [LibraryImport("libc", EntryPoint = "read", SetLastError = true)]
    public static partial nint Read(int fd, void* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "write", SetLastError = true)]
    public static partial nint Write(int fd, void* buffer, nuint count);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "setns", SetLastError = true)]
    public static partial int SetNs(int fd, int nstype);
}
