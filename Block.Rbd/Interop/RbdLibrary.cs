using System.Runtime.InteropServices;

namespace Block.Rbd.Interop;

/// <summary>
/// Loads librados and librbd on first use, so that a process that never opens an rbd node never needs them, and one
/// that does without them gets a clear error naming the Debian package at open.
/// </summary>
internal static class RbdLibrary
{
    private static readonly Lazy<string?> s_failure = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Makes sure librados and librbd are loaded.</summary>
    /// <exception cref="BlockException">ENOTSUP: librbd1 (or librados2) is not installed.</exception>
    public static void EnsureLoaded()
    {
        if (s_failure.Value is { } failure)
            ThrowUnavailable(failure);
    }

    private static string? Load()
    {
        if (!NativeLibrary.TryLoad(LibRbd.Rados, typeof(RbdLibrary).Assembly, null, out _))
            return $"the rbd driver needs the system librados ({LibRbd.Rados}, Debian's librados2, installed with librbd1), which is not installed";
        if (!NativeLibrary.TryLoad(LibRbd.Rbd, typeof(RbdLibrary).Assembly, null, out _))
            return $"the rbd driver needs the system librbd ({LibRbd.Rbd}, Debian's librbd1), which is not installed";
        return null;
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private static void ThrowUnavailable(string message) => throw new BlockException(Errno.ENOTSUP, message);
}
