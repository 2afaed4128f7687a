using System.Runtime.InteropServices;

namespace Block.Gluster.Interop;

/// <summary>
/// Loads libgfapi on first use, so that a process that never opens a gluster node never needs the library, and one
/// that does without it gets a clear error naming the package at open.
/// </summary>
internal static class GlusterLibrary
{
    private static readonly Lazy<string?> s_failure = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Makes sure libgfapi is loaded.</summary>
    /// <exception cref="BlockException">ENOTSUP: libgfapi is not installed.</exception>
    public static void EnsureLoaded()
    {
        if (s_failure.Value is { } failure)
            ThrowUnavailable(failure);
    }

    private static string? Load() => Probe(LibGfapi.Library);

    /// <summary>Null if <paramref name="library"/> loads, else the message an open without it gives.</summary>
    internal static string? Probe(string library) =>
        NativeLibrary.TryLoad(library, typeof(GlusterLibrary).Assembly, null, out _)
            ? null
            : $"the gluster driver needs the system libgfapi ({library}, Debian's libgfapi0), which is not installed";

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private static void ThrowUnavailable(string message) => throw new BlockException(Errno.ENOTSUP, message);
}
