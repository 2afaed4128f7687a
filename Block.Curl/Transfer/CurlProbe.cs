using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Block.Curl.Interop;

namespace Block.Curl.Transfer;

/// <summary>
/// The open-time request: a HEAD for http and https (a SIZE for ftp and ftps, which libcurl sends for a body-less
/// transfer), giving the image's length and, over http, whether the server takes byte ranges.
/// </summary>
internal sealed unsafe class CurlProbe
{
    private CurlProbe()
    {
    }

    /// <summary>The length the server reported, or -1.</summary>
    public long Length { get; private set; } = -1;

    /// <summary>Whether an <c>Accept-Ranges: bytes</c> header came with the response.</summary>
    public bool AcceptsRanges { get; private set; }

    /// <summary>libcurl's error text when the request failed, else null.</summary>
    public string? Error { get; private set; }

    /// <summary>Runs the request on the calling thread (it blocks for at most the node's timeout).</summary>
    public static CurlProbe Run(CurlSettings settings)
    {
        var probe = new CurlProbe();
        nint easy = LibCurl.EasyInit();
        if (easy == 0)
        {
            probe.Error = "curl_easy_init failed";
            return probe;
        }
        var handle = GCHandle.Alloc(probe);
        byte* errors = (byte*)NativeMemory.AllocZeroed(LibCurl.ErrorSize);
        try
        {
            settings.Apply(easy);
            LibCurl.SetOptLong(easy, LibCurl.OptNoBody, 1);
            LibCurl.SetOptPointer(easy, LibCurl.OptErrorBuffer, (nint)errors);
            LibCurl.SetOptPointer(easy, LibCurl.OptHeaderFunction, (nint)(delegate* unmanaged[Cdecl]<byte*, nuint, nuint, nint, nuint>)&OnHeader);
            LibCurl.SetOptPointer(easy, LibCurl.OptHeaderData, GCHandle.ToIntPtr(handle));
            int rc = LibCurl.EasyPerform(easy);
            if (rc != 0)
            {
                probe.Error = errors[0] != 0 ? Marshal.PtrToStringUTF8((nint)errors) : LibCurl.StrError(rc);
                return probe;
            }
            long length;
            if (LibCurl.GetInfoLong(easy, LibCurl.InfoContentLengthDownloadT, &length) == 0)
                probe.Length = length;
            return probe;
        }
        finally
        {
            LibCurl.EasyCleanup(easy);
            NativeMemory.Free(errors);
            handle.Free();
        }
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static nuint OnHeader(byte* data, nuint size, nuint count, nint user)
    {
        nuint total = size * count;
        var probe = (CurlProbe)GCHandle.FromIntPtr(user).Target!;
        var line = new ReadOnlySpan<byte>(data, (int)Math.Min(total, int.MaxValue));
        if (CurlHeader.IsStatusLine(line))
            probe.AcceptsRanges = false;
        else if (CurlHeader.IsAcceptRangesBytes(line))
            probe.AcceptsRanges = true;
        return total;
    }
}
