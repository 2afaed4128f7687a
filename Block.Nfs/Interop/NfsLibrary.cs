using System.Runtime.InteropServices;

namespace Block.Nfs.Interop;

/// <summary>
/// Loads libnfs on first use, so that a process that never opens an nfs node never needs the library, and one that
/// does without it gets a clear error naming the package at open.
/// </summary>
internal static class NfsLibrary
{
    private static readonly Lazy<string?> s_failure = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Makes sure libnfs is loaded.</summary>
    /// <exception cref="BlockException">ENOTSUP: libnfs is not installed.</exception>
    public static void EnsureLoaded()
    {
        if (s_failure.Value is { } failure)
            ThrowUnavailable(failure);
    }

    private static string? Load() => Probe(LibNfs.Library);

    /// <summary>Null if <paramref name="library"/> loads, else the message an open without it gives.</summary>
    internal static string? Probe(string library) =>
        NativeLibrary.TryLoad(library, typeof(NfsLibrary).Assembly, null, out _)
            ? null
            : $"the nfs driver needs the system libnfs ({library}, Debian's libnfs13), which is not installed";

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private static void ThrowUnavailable(string message) => throw new BlockException(Errno.ENOTSUP, message);
}
