using System.Runtime.InteropServices;

namespace Block.Gluster.Interop;

/// <summary>The libc calls that move a connecting thread into another network namespace.</summary>
internal static partial class LibC
{
    public const int OReadOnly = 0;
    public const int OCloexec = 0x80000;
    public const int CloneNewNet = 0x40000000;

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport("libc", EntryPoint = "setns", SetLastError = true)]
    public static partial int SetNs(int fd, int nstype);
}
