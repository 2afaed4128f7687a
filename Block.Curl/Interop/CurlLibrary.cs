using System.Runtime.InteropServices;

namespace Block.Curl.Interop;

/// <summary>
/// Loads libcurl on first use and runs <c>curl_global_init</c> once, so that a process that never opens a curl node
/// never needs the library, and one that does without it gets a clear error at open.
/// </summary>
internal static class CurlLibrary
{
    private static readonly Lazy<string?> s_failure = new(Load, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Makes sure libcurl is loaded and initialised.</summary>
    /// <exception cref="BlockException">ENOTSUP: libcurl is not installed, or would not initialise.</exception>
    public static void EnsureLoaded()
    {
        if (s_failure.Value is { } failure)
            ThrowUnavailable(failure);
    }

    private static string? Load()
    {
        if (!NativeLibrary.TryLoad(LibCurl.Library, typeof(CurlLibrary).Assembly, null, out _))
            return $"the curl drivers need the system libcurl ({LibCurl.Library}, Debian's libcurl4), which is not installed";
        // curl_global_init is not thread-safe before 7.84; the Lazy runs it once, before any handle exists.
        int rc = LibCurl.GlobalInit(LibCurl.GlobalAll);
        return rc == 0 ? null : $"curl_global_init failed: {LibCurl.StrError(rc)}";
    }

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private static void ThrowUnavailable(string message) => throw new BlockException(Errno.ENOTSUP, message);
}
