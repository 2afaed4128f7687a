using System.Runtime.InteropServices;

namespace Block.Gluster.Interop;

/// <summary>The part of libgfapi's C API the gluster driver uses, bound to <c>libgfapi.so.0</c> (Debian's libgfapi0, GlusterFS 10.3).</summary>
/// <remarks>
/// <para>The names resolve to the library's default symbol versions, which since GlusterFS 6 (<c>GFAPI_6.0</c>) give
/// the async callbacks and <c>glfs_ftruncate</c> pre- and post-operation <c>struct glfs_stat</c> pointers:
/// <c>void cbk(glfs_fd_t *fd, ssize_t ret, struct glfs_stat *prestat, struct glfs_stat *poststat, void *data)</c>.
/// A callback runs on one of gfapi's own threads, with <c>errno</c> set to the error when <c>ret</c> is negative.</para>
/// <para>A <c>glfs_t</c> and its fds are thread-safe: requests are started from any thread.</para>
/// </remarks>
internal static unsafe partial class LibGfapi
{
    public const string Library = "libgfapi.so.0";

    [LibraryImport(Library, EntryPoint = "glfs_new", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial nint New(string volume);

    [LibraryImport(Library, EntryPoint = "glfs_set_volfile_server", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int SetVolfileServer(nint fs, string transport, string host, int port);

    [LibraryImport(Library, EntryPoint = "glfs_set_logging", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int SetLogging(nint fs, string logfile, int level);

    [LibraryImport(Library, EntryPoint = "glfs_set_xlator_option", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial int SetXlatorOption(nint fs, string xlator, string key, string value);

    [LibraryImport(Library, EntryPoint = "glfs_init", SetLastError = true)]
    public static partial int Init(nint fs);

    [LibraryImport(Library, EntryPoint = "glfs_fini", SetLastError = true)]
    public static partial int Fini(nint fs);

    [LibraryImport(Library, EntryPoint = "glfs_open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial nint Open(nint fs, string path, int flags);

    [LibraryImport(Library, EntryPoint = "glfs_creat", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    public static partial nint Creat(nint fs, string path, int flags, uint mode);

    [LibraryImport(Library, EntryPoint = "glfs_close", SetLastError = true)]
    public static partial int Close(nint fd);

    /// <summary><c>glfs_fstat</c> into the platform's <c>struct stat</c> (see <see cref="StatBuffer"/>).</summary>
    [LibraryImport(Library, EntryPoint = "glfs_fstat", SetLastError = true)]
    public static partial int Fstat(nint fd, byte* stat);

    [LibraryImport(Library, EntryPoint = "glfs_ftruncate", SetLastError = true)]
    public static partial int Ftruncate(nint fd, long length, nint prestat, nint poststat);

    [LibraryImport(Library, EntryPoint = "glfs_lseek", SetLastError = true)]
    public static partial long Lseek(nint fd, long offset, int whence);

    [LibraryImport(Library, EntryPoint = "glfs_fallocate", SetLastError = true)]
    public static partial int Fallocate(nint fd, int keepSize, long offset, nuint length);

    [LibraryImport(Library, EntryPoint = "glfs_zerofill", SetLastError = true)]
    public static partial int Zerofill(nint fd, long offset, long length);

    [LibraryImport(Library, EntryPoint = "glfs_preadv_async", SetLastError = true)]
    public static partial int PreadvAsync(nint fd, IoVec* iov, int count, long offset, int flags, delegate* unmanaged<nint, nint, nint, nint, nint, void> cb, nint data);

    [LibraryImport(Library, EntryPoint = "glfs_pwritev_async", SetLastError = true)]
    public static partial int PwritevAsync(nint fd, IoVec* iov, int count, long offset, int flags, delegate* unmanaged<nint, nint, nint, nint, nint, void> cb, nint data);

    [LibraryImport(Library, EntryPoint = "glfs_fsync_async", SetLastError = true)]
    public static partial int FsyncAsync(nint fd, delegate* unmanaged<nint, nint, nint, nint, nint, void> cb, nint data);

    [LibraryImport(Library, EntryPoint = "glfs_discard_async", SetLastError = true)]
    public static partial int DiscardAsync(nint fd, long offset, nuint length, delegate* unmanaged<nint, nint, nint, nint, nint, void> cb, nint data);

    [LibraryImport(Library, EntryPoint = "glfs_zerofill_async", SetLastError = true)]
    public static partial int ZerofillAsync(nint fd, long offset, long length, delegate* unmanaged<nint, nint, nint, nint, nint, void> cb, nint data);

    /// <summary>C's <c>struct iovec</c>.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct IoVec
    {
        public void* Base;
        public nuint Length;
    }

    /// <summary>The fields of the platform's <c>struct stat</c> the driver reads, at their offsets on x86-64 and on arm64.</summary>
    public static class StatBuffer
    {
        /// <summary>Big enough for either layout (144 and 128 bytes).</summary>
        public const int Size = 256;

        private static readonly bool s_x64 = RuntimeInformation.ProcessArchitecture == Architecture.X64;

        public static uint Mode(byte* stat) => *(uint*)(stat + (s_x64 ? 24 : 16));

        public static long FileSize(byte* stat) => *(long*)(stat + 48);

        public static long Blocks(byte* stat) => *(long*)(stat + 64);
    }
}
