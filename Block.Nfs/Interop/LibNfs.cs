using System.Runtime.InteropServices;

namespace Block.Nfs.Interop;

/// <summary>The part of libnfs's C API the nfs driver uses, bound to <c>libnfs.so.13</c> (Debian's libnfs13, libnfs 4.0).</summary>
/// <remarks>
/// Only the asynchronous calls: every one queues an RPC and returns, and its callback
/// (<c>void cb(int err, struct nfs_context *, void *data, void *private_data)</c>) runs later inside
/// <c>nfs_service</c> on the mount's event-loop thread. A context is not thread-safe, so only that thread calls in.
/// </remarks>
internal static unsafe partial class LibNfs
{
    public const string Library = "libnfs.so.13";

    [LibraryImport(Library, EntryPoint = "nfs_init_context")]
    public static partial nint InitContext();

    [LibraryImport(Library, EntryPoint = "nfs_destroy_context")]
    public static partial void DestroyContext(nint nfs);

    [LibraryImport(Library, EntryPoint = "nfs_get_error")]
    public static partial nint GetError(nint nfs);

    [LibraryImport(Library, EntryPoint = "nfs_get_fd")]
    public static partial int GetFd(nint nfs);

    [LibraryImport(Library, EntryPoint = "nfs_which_events")]
    public static partial int WhichEvents(nint nfs);

    [LibraryImport(Library, EntryPoint = "nfs_service")]
    public static partial int Service(nint nfs, int revents);

    [LibraryImport(Library, EntryPoint = "nfs_get_readmax")]
    public static partial ulong GetReadMax(nint nfs);

    [LibraryImport(Library, EntryPoint = "nfs_get_writemax")]
    public static partial ulong GetWriteMax(nint nfs);

    [LibraryImport(Library, EntryPoint = "nfs_set_uid")]
    public static partial void SetUid(nint nfs, int uid);

    [LibraryImport(Library, EntryPoint = "nfs_set_gid")]
    public static partial void SetGid(nint nfs, int gid);

    [LibraryImport(Library, EntryPoint = "nfs_set_tcp_syncnt")]
    public static partial void SetTcpSynCount(nint nfs, int count);

    [LibraryImport(Library, EntryPoint = "nfs_set_readahead")]
    public static partial void SetReadahead(nint nfs, uint bytes);

    [LibraryImport(Library, EntryPoint = "nfs_set_pagecache")]
    public static partial void SetPageCache(nint nfs, uint pages);

    [LibraryImport(Library, EntryPoint = "nfs_set_debug")]
    public static partial void SetDebug(nint nfs, int level);

    [LibraryImport(Library, EntryPoint = "nfs_set_autoreconnect")]
    public static partial void SetAutoReconnect(nint nfs, int retries);

    [LibraryImport(Library, EntryPoint = "nfs_mount_async", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int MountAsync(nint nfs, string server, string export, delegate* unmanaged<int, nint, nint, nint, void> cb, nint data);

    [LibraryImport(Library, EntryPoint = "nfs_umount_async")]
    public static partial int UmountAsync(nint nfs, delegate* unmanaged<int, nint, nint, nint, void> cb, nint data);

    [LibraryImport(Library, EntryPoint = "nfs_open_async", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int OpenAsync(nint nfs, string path, int flags, delegate* unmanaged<int, nint, nint, nint, void> cb, nint data);

    [LibraryImport(Library, EntryPoint = "nfs_creat_async", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int CreatAsync(nint nfs, string path, int mode, delegate* unmanaged<int, nint, nint, nint, void> cb, nint data);

    [LibraryImport(Library, EntryPoint = "nfs_close_async")]
    public static partial int CloseAsync(nint nfs, nint fh, delegate* unmanaged<int, nint, nint, nint, void> cb, nint data);

    [LibraryImport(Library, EntryPoint = "nfs_fstat64_async")]
    public static partial int Fstat64Async(nint nfs, nint fh, delegate* unmanaged<int, nint, nint, nint, void> cb, nint data);

    [LibraryImport(Library, EntryPoint = "nfs_pread_async")]
    public static partial int PreadAsync(nint nfs, nint fh, ulong offset, ulong count, delegate* unmanaged<int, nint, nint, nint, void> cb, nint data);

    [LibraryImport(Library, EntryPoint = "nfs_pwrite_async")]
    public static partial int PwriteAsync(nint nfs, nint fh, ulong offset, ulong count, byte* buffer, delegate* unmanaged<int, nint, nint, nint, void> cb, nint data);

    [LibraryImport(Library, EntryPoint = "nfs_fsync_async")]
    public static partial int FsyncAsync(nint nfs, nint fh, delegate* unmanaged<int, nint, nint, nint, void> cb, nint data);

    [LibraryImport(Library, EntryPoint = "nfs_ftruncate_async")]
    public static partial int FtruncateAsync(nint nfs, nint fh, ulong length, delegate* unmanaged<int, nint, nint, nint, void> cb, nint data);

    /// <summary>libnfs's <c>struct nfs_stat_64</c>.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct Stat64
    {
        public ulong Dev, Ino, Mode, Nlink, Uid, Gid, Rdev, Size, BlockSize, Blocks;
        public ulong Atime, Mtime, Ctime, AtimeNsec, MtimeNsec, CtimeNsec, Used;
    }

    /// <summary>The context's last error text (libnfs owns the string).</summary>
    public static string Error(nint nfs) => Marshal.PtrToStringUTF8(GetError(nfs)) ?? "unknown error";
}
