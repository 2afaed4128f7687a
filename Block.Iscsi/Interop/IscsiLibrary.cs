using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;

namespace Block.Iscsi.Interop;

/// <summary>
/// Loads libiscsi on first use, so that a process that never opens an iscsi node never needs the library, and one
/// that does without it gets an error naming the package at open.
/// </summary>
internal static class IscsiLibrary
{
    private static readonly Lazy<string?> s_failure = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Makes sure libiscsi is loaded.</summary>
    /// <exception cref="BlockException">ENOTSUP: libiscsi is not installed.</exception>
    public static void EnsureLoaded()
    {
        if (s_failure.Value is { } failure)
            ThrowUnavailable(failure);
    }

    private static string? Load() =>
        NativeLibrary.TryLoad(LibIscsi.Library, typeof(IscsiLibrary).Assembly, null, out _)
            ? null
            : $"the iscsi driver needs the system libiscsi ({LibIscsi.Library}, Debian's libiscsi7), which is not installed";

    [DoesNotReturn]
    private static void ThrowUnavailable(string message) => throw new BlockException(Errno.ENOTSUP, message);
}
