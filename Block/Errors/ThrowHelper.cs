using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;

namespace Block;

/// <summary>
/// Throws from out-of-line methods so that the request fast paths that call them stay small enough to inline.
/// </summary>
internal static class ThrowHelper
{
    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void Throw(Errno errno, string message) => throw new BlockException(errno, message);

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static T Throw<T>(Errno errno, string message) => throw new BlockException(errno, message);

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void ThrowOutOfRange(string what, long offset, long bytes, long limit) =>
        throw new BlockException(Errno.EIO, $"{what} request out of range: offset {offset}, {bytes} bytes, limit {limit}");

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void ThrowReadOnly(string nodeName) =>
        throw new BlockException(Errno.EPERM, $"Node '{nodeName}' is read-only");

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void ThrowInvalidRequest(long offset, long bytes) =>
        throw new BlockException(Errno.EINVAL, $"Invalid request: offset {offset}, {bytes} bytes");

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void ThrowNotSupported(string what) =>
        throw new BlockException(Errno.ENOTSUP, what);

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void ThrowFromErrno(int errno, string what) =>
        throw new BlockException((Errno)errno, $"{what}: {ErrnoText.Describe((Errno)errno)}");

    [DoesNotReturn]
    [MethodImpl(MethodImplOptions.NoInlining)]
    public static void ThrowObjectDisposed(string what) => throw new ObjectDisposedException(what);
}
