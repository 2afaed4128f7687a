using System.Runtime.InteropServices;

namespace Block.Rbd.Interop;

/// <summary>
/// The part of librados' and librbd's C API the rbd driver uses, bound to <c>librados.so.2</c> and <c>librbd.so.1</c>
/// (Debian's librados2 and librbd1) on first call.
/// </summary>
internal static unsafe partial class LibRbd
{
    public const string Rados = "librados.so.2";
    public const string Rbd = "librbd.so.1";

    /// <summary>RBD_FEATURE_FAST_DIFF: the object map can tell which objects exist.</summary>
    public const ulong FeatureFastDiff = 1 << 4;

    /// <summary>RBD_FLAG_FAST_DIFF_INVALID: the fast-diff data cannot be trusted.</summary>
    public const ulong FlagFastDiffInvalid = 1 << 1;

    /// <summary><c>rbd_image_info_t</c>.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct ImageInfo
    {
        public ulong Size;
        public ulong ObjectSize;
        public ulong ObjectCount;
        public int Order;
        public fixed byte BlockNamePrefix[24];
        public long ParentPool;
        public fixed byte ParentName[96];
    }

    /// <summary><c>struct iovec</c>.</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct IoVec
    {
        public void* Base;
        public nuint Length;
    }

    [LibraryImport(Rados, EntryPoint = "rados_create", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Create(out nint cluster, string? id);

    [LibraryImport(Rados, EntryPoint = "rados_conf_read_file", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int ConfReadFile(nint cluster, string? path);

    [LibraryImport(Rados, EntryPoint = "rados_conf_set", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int ConfSet(nint cluster, string option, string value);

    [LibraryImport(Rados, EntryPoint = "rados_conf_get", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int ConfGet(nint cluster, string option, byte* buffer, nuint length);

    [LibraryImport(Rados, EntryPoint = "rados_connect")]
    public static partial int Connect(nint cluster);

    [LibraryImport(Rados, EntryPoint = "rados_shutdown")]
    public static partial void Shutdown(nint cluster);

    [LibraryImport(Rados, EntryPoint = "rados_ioctx_create", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int IoCtxCreate(nint cluster, string pool, out nint ioctx);

    [LibraryImport(Rados, EntryPoint = "rados_ioctx_destroy")]
    public static partial void IoCtxDestroy(nint ioctx);

    [LibraryImport(Rados, EntryPoint = "rados_ioctx_set_namespace", StringMarshalling = StringMarshalling.Utf8)]
    public static partial void IoCtxSetNamespace(nint ioctx, string? nspace);

    [LibraryImport(Rbd, EntryPoint = "rbd_create", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int ImageCreate(nint ioctx, string name, ulong size, ref int order);

    [LibraryImport(Rbd, EntryPoint = "rbd_open", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Open(nint ioctx, string name, out nint image, string? snapName);

    [LibraryImport(Rbd, EntryPoint = "rbd_open_read_only", StringMarshalling = StringMarshalling.Utf8)]
    public static partial int OpenReadOnly(nint ioctx, string name, out nint image, string? snapName);

    [LibraryImport(Rbd, EntryPoint = "rbd_close")]
    public static partial int Close(nint image);

    [LibraryImport(Rbd, EntryPoint = "rbd_stat")]
    public static partial int Stat(nint image, out ImageInfo info, nuint infoSize);

    [LibraryImport(Rbd, EntryPoint = "rbd_get_size")]
    public static partial int GetSize(nint image, out ulong size);

    [LibraryImport(Rbd, EntryPoint = "rbd_get_features")]
    public static partial int GetFeatures(nint image, out ulong features);

    [LibraryImport(Rbd, EntryPoint = "rbd_get_flags")]
    public static partial int GetFlags(nint image, out ulong flags);

    [LibraryImport(Rbd, EntryPoint = "rbd_resize")]
    public static partial int Resize(nint image, ulong size);

    [LibraryImport(Rbd, EntryPoint = "rbd_invalidate_cache")]
    public static partial int InvalidateCache(nint image);

    [LibraryImport(Rbd, EntryPoint = "rbd_aio_create_completion")]
    public static partial int AioCreateCompletion(nint arg, delegate* unmanaged<nint, nint, void> callback, out nint completion);

    [LibraryImport(Rbd, EntryPoint = "rbd_aio_get_return_value")]
    public static partial nint AioGetReturnValue(nint completion);

    [LibraryImport(Rbd, EntryPoint = "rbd_aio_release")]
    public static partial void AioRelease(nint completion);

    [LibraryImport(Rbd, EntryPoint = "rbd_aio_readv")]
    public static partial int AioReadv(nint image, IoVec* iov, int iovCount, ulong offset, nint completion);

    [LibraryImport(Rbd, EntryPoint = "rbd_aio_writev")]
    public static partial int AioWritev(nint image, IoVec* iov, int iovCount, ulong offset, nint completion);

    [LibraryImport(Rbd, EntryPoint = "rbd_aio_discard")]
    public static partial int AioDiscard(nint image, ulong offset, ulong length, nint completion);

    [LibraryImport(Rbd, EntryPoint = "rbd_aio_write_zeroes")]
    public static partial int AioWriteZeroes(nint image, ulong offset, nuint length, nint completion, int zeroFlags, int opFlags);

    [LibraryImport(Rbd, EntryPoint = "rbd_aio_flush")]
    public static partial int AioFlush(nint image, nint completion);

    [LibraryImport(Rbd, EntryPoint = "rbd_diff_iterate2")]
    public static partial int DiffIterate2(nint image, nint fromSnapName, ulong offset, ulong length, byte includeParent, byte wholeObject,
        delegate* unmanaged<ulong, nuint, int, nint, int> callback, nint arg);
}
