using System.Runtime.InteropServices;

namespace Block.Curl.Interop;

/// <summary>
/// The part of libcurl's C API the curl drivers use, bound to <c>libcurl.so.4</c> (Debian's libcurl4) on first call.
/// </summary>
/// <remarks>
/// <c>curl_easy_setopt</c> and <c>curl_easy_getinfo</c> are variadic in C; they are bound here with one fixed
/// prototype per argument type. On x86-64 System V and AArch64 Linux, a pointer or 64-bit integer passed as the first
/// variadic argument travels in the same register as a fixed one, so these calls are what a C compiler emits.
/// </remarks>
internal static unsafe partial class LibCurl
{
    public const string Library = "libcurl.so.4";

    public const long GlobalAll = 3;

    // CURLoption: type base + number (curl/curl.h).
    public const int OptWriteData = 10001;
    public const int OptUrl = 10002;
    public const int OptRange = 10007;
    public const int OptErrorBuffer = 10010;
    public const int OptWriteFunction = 20011;
    public const int OptTimeout = 13;
    public const int OptCookie = 10022;
    public const int OptHeaderData = 10029;
    public const int OptVerbose = 41;
    public const int OptNoBody = 44;
    public const int OptFailOnError = 45;
    public const int OptFollowLocation = 52;
    public const int OptAutoReferer = 58;
    public const int OptSslVerifyPeer = 64;
    public const int OptHeaderFunction = 20079;
    public const int OptSslVerifyHost = 81;
    public const int OptBufferSize = 98;
    public const int OptNoSignal = 99;
    public const int OptUsername = 10173;
    public const int OptPassword = 10174;
    public const int OptProxyUsername = 10175;
    public const int OptProxyPassword = 10176;
    public const int OptProtocols = 181;
    public const int OptRedirProtocols = 182;

    /// <summary>CURLPROTO_HTTP | HTTPS | FTP | FTPS: the only schemes a curl node (and a redirect) may reach, as in QEMU.</summary>
    public const long ProtocolsAllowed = 1 | 2 | 4 | 8;

    // CURLINFO: type base + number.
    public const int InfoResponseCode = 0x200002;
    public const int InfoContentLengthDownloadT = 0x60000F;

    public const int MsgDone = 1;
    public const int ErrorSize = 256;

    /// <summary>CURLcode of a transfer the write callback stopped (CURLE_WRITE_ERROR).</summary>
    public const int CodeWriteError = 23;

    [LibraryImport(Library, EntryPoint = "curl_global_init")]
    public static partial int GlobalInit(long flags);

    [LibraryImport(Library, EntryPoint = "curl_easy_init")]
    public static partial nint EasyInit();

    [LibraryImport(Library, EntryPoint = "curl_easy_cleanup")]
    public static partial void EasyCleanup(nint easy);

    [LibraryImport(Library, EntryPoint = "curl_easy_perform")]
    public static partial int EasyPerform(nint easy);

    [LibraryImport(Library, EntryPoint = "curl_easy_setopt")]
    public static partial int SetOptLong(nint easy, int option, long value);

    [LibraryImport(Library, EntryPoint = "curl_easy_setopt")]
    public static partial int SetOptPointer(nint easy, int option, nint value);

    [LibraryImport(Library, EntryPoint = "curl_easy_setopt")]
    public static partial int SetOptString(nint easy, int option, byte* value);

    [LibraryImport(Library, EntryPoint = "curl_easy_getinfo")]
    public static partial int GetInfoLong(nint easy, int info, long* value);

    [LibraryImport(Library, EntryPoint = "curl_easy_strerror")]
    public static partial byte* EasyStrError(int code);

    [LibraryImport(Library, EntryPoint = "curl_multi_init")]
    public static partial nint MultiInit();

    [LibraryImport(Library, EntryPoint = "curl_multi_cleanup")]
    public static partial int MultiCleanup(nint multi);

    [LibraryImport(Library, EntryPoint = "curl_multi_add_handle")]
    public static partial int MultiAddHandle(nint multi, nint easy);

    [LibraryImport(Library, EntryPoint = "curl_multi_remove_handle")]
    public static partial int MultiRemoveHandle(nint multi, nint easy);

    [LibraryImport(Library, EntryPoint = "curl_multi_perform")]
    public static partial int MultiPerform(nint multi, int* runningHandles);

    [LibraryImport(Library, EntryPoint = "curl_multi_poll")]
    public static partial int MultiPoll(nint multi, nint extraFds, uint extraNfds, int timeoutMs, int* numFds);

    [LibraryImport(Library, EntryPoint = "curl_multi_wakeup")]
    public static partial int MultiWakeup(nint multi);

    [LibraryImport(Library, EntryPoint = "curl_multi_info_read")]
    public static partial CurlMsg* MultiInfoRead(nint multi, int* messagesInQueue);

    /// <summary>curl's <c>CURLMsg</c>: what finished and how (<c>data.result</c> for <c>CURLMSG_DONE</c>).</summary>
    [StructLayout(LayoutKind.Sequential)]
    public struct CurlMsg
    {
        public int Msg;
        public nint EasyHandle;
        public int Result;
    }

    /// <summary>Sets a string option from a .NET string (libcurl copies it).</summary>
    public static int SetOpt(nint easy, int option, string value)
    {
        int length = System.Text.Encoding.UTF8.GetByteCount(value);
        byte[] bytes = new byte[length + 1];
        System.Text.Encoding.UTF8.GetBytes(value, bytes);
        fixed (byte* p = bytes)
            return SetOptString(easy, option, p);
    }

    /// <summary>curl's text for a <c>CURLcode</c>.</summary>
    public static string StrError(int code) => Marshal.PtrToStringUTF8((nint)EasyStrError(code)) ?? $"curl error {code}";
}
