using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Block.Curl.Interop;

namespace Block.Curl.Transfer;

/// <summary>
/// One of a node's transfer slots (QEMU's <c>CURLState</c>): an easy handle kept for its connection, the buffer a
/// ranged GET lands in, and after a transfer that passed every check, that range's bytes for later reads to take.
/// </summary>
/// <remarks>
/// The buffer is kept and only grows (to the largest range the slot has fetched), so steady reads allocate nothing.
/// A response is accepted only if it is exactly the range asked for: over http a 206 whose <c>Content-Range</c> names
/// that range, and over every scheme exactly the range's length. A 200 with the whole file, a range that is not the
/// one asked for, too many bytes, too few, or a dropped connection fail the transfer, and its bytes are never used.
/// </remarks>
internal sealed unsafe class CurlSlot : IDisposable
{
    /// <summary>Reads one transfer serves at most, as QEMU's <c>CURL_NUM_ACB</c>.</summary>
    public const int MaxWaiters = 8;

    private const int RangeTextSize = 48;

    private readonly bool _http;
    private GCHandle _self;
    private byte* _buffer;
    private int _capacity;
    private byte* _errors;
    private byte* _range;

    // Transfer state, written by the transfer thread's callbacks while the slot is in use.
    private int _received;
    private long _contentFirst = -1, _contentLast = -1;
    private string? _failure;

    public CurlSlot(CurlSettings settings, bool http)
    {
        _http = http;
        Easy = LibCurl.EasyInit();
        if (Easy == 0)
            throw new BlockException(Errno.ENOMEM, "curl_easy_init failed");
        _self = GCHandle.Alloc(this);
        _errors = (byte*)NativeMemory.AllocZeroed(LibCurl.ErrorSize + RangeTextSize);
        _range = _errors + LibCurl.ErrorSize;
        settings.Apply(Easy);
        nint self = GCHandle.ToIntPtr(_self);
        LibCurl.SetOptPointer(Easy, LibCurl.OptErrorBuffer, (nint)_errors);
        LibCurl.SetOptPointer(Easy, LibCurl.OptWriteFunction, (nint)(delegate* unmanaged[Cdecl]<byte*, nuint, nuint, nint, nuint>)&OnWrite);
        LibCurl.SetOptPointer(Easy, LibCurl.OptWriteData, self);
        LibCurl.SetOptPointer(Easy, LibCurl.OptHeaderFunction, (nint)(delegate* unmanaged[Cdecl]<byte*, nuint, nuint, nint, nuint>)&OnHeader);
        LibCurl.SetOptPointer(Easy, LibCurl.OptHeaderData, self);
        // libcurl's receive buffer: 512 KiB rather than 16 KiB means 32 times fewer write callbacks per range.
        LibCurl.SetOptLong(Easy, LibCurl.OptBufferSize, 512 * 1024);
    }

    /// <summary>The easy handle.</summary>
    public nint Easy { get; }

    // Node state, guarded by the node's lock.

    /// <summary>Whether a transfer is running (or its result is being delivered).</summary>
    public bool InUse;

    /// <summary>The image offset of the slot's range.</summary>
    public long BufferStart;

    /// <summary>The length of the slot's range.</summary>
    public int BufferLength;

    /// <summary>How many bytes of the range are valid: 0 until a transfer passed its checks, then all of them.</summary>
    public int Filled;

    /// <summary>The reads the running transfer will serve.</summary>
    public readonly List<CurlRead> Waiters = new(MaxWaiters);

    /// <summary>
    /// The read that started the transfer: the write callback copies its bytes to it as they arrive, while they are
    /// still in the CPU's cache, rather than in one cold copy of the whole range at the end.
    /// </summary>
    /// <remarks>
    /// Set before the transfer is submitted and unchanged until it ends, so the transfer thread reads it without the
    /// node's lock. Bytes reach it only after the response's status and <c>Content-Range</c> passed their checks;
    /// a transfer that fails later fails the read, whose buffer then holds no promise, as after any failed read.
    /// Measured on the 512 MiB convert of bench/curl-compare.sh with eight reads in flight (2 cores, load ~8):
    /// 2.8–3.4 s with one copy of each 2.25 MiB range at the end (eight of them, 18 MiB, miss the cache), 1.1–1.2 s
    /// with the bytes copied as they arrive.
    /// </remarks>
    public CurlRead? Primary;

    /// <summary>How many of the range's first bytes <see cref="Primary"/> takes.</summary>
    public int PrimaryLength;

    /// <summary>The slot's bytes: the range last fetched.</summary>
    public ReadOnlySpan<byte> Data => new(_buffer, Filled);

    /// <summary>Prepares a GET of <paramref name="length"/> bytes at <paramref name="start"/> (under the node's lock).</summary>
    public void Prepare(long start, int length)
    {
        InUse = true;
        Filled = 0;
        BufferStart = start;
        BufferLength = length;
        if (_capacity < length)
        {
            NativeMemory.Free(_buffer);
            _buffer = null;
            _capacity = 0;
            _buffer = (byte*)NativeMemory.Alloc((nuint)length);
            _capacity = length;
        }
        _received = 0;
        _contentFirst = _contentLast = -1;
        _failure = null;
        _errors[0] = 0;
        {
            byte* range = _range;
            var text = new Span<byte>(range, RangeTextSize - 1);
            System.Buffers.Text.Utf8Formatter.TryFormat(start, text, out int a);
            text[a++] = (byte)'-';
            System.Buffers.Text.Utf8Formatter.TryFormat(start + length - 1, text[a..], out int b);
            text[a + b] = 0;
            // libcurl copies the string.
            LibCurl.SetOptString(Easy, LibCurl.OptRange, range);
        }
    }

    /// <summary>
    /// Decides whether the finished transfer delivered exactly its range (on the transfer thread); null if it did,
    /// else what went wrong.
    /// </summary>
    public string? Check(int result)
    {
        if (result < 0)
            return $"curl_multi_add_handle failed ({-result})";
        if (result != 0)
            return _failure ?? (_errors[0] != 0 ? Marshal.PtrToStringUTF8((nint)_errors) : LibCurl.StrError(result));
        if (_http)
        {
            long status;
            if (LibCurl.GetInfoLong(Easy, LibCurl.InfoResponseCode, &status) != 0 || status != 206)
                return $"server answered a range request with status {status}, not 206 Partial Content";
            if (_contentFirst != BufferStart || _contentLast != BufferStart + BufferLength - 1)
                return $"server sent range {_contentFirst}-{_contentLast} for range {BufferStart}-{BufferStart + BufferLength - 1}";
        }
        if (_received != BufferLength)
            return $"server sent {_received} of the {BufferLength} bytes at offset {BufferStart}";
        return null;
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static nuint OnWrite(byte* data, nuint size, nuint count, nint user)
    {
        nuint total = size * count;
        var slot = (CurlSlot)GCHandle.FromIntPtr(user).Target!;
        return slot.Append(data, total) ? total : 0;
    }

    private bool Append(byte* data, nuint length)
    {
        if (_http && _received == 0 && !RangeHeaderMatches())
            return false;
        if (length > (nuint)(BufferLength - _received))
        {
            _failure = $"server sent more than the {BufferLength} bytes asked for at offset {BufferStart}";
            return false;
        }
        Buffer.MemoryCopy(data, _buffer + _received, BufferLength - _received, (long)length);
        if (_received < PrimaryLength)
        {
            int take = Math.Min((int)length, PrimaryLength - _received);
            Primary!.Target.Slice(_received, take).CopyFrom(new ReadOnlySpan<byte>(data, take));
        }
        _received += (int)length;
        return true;
    }

    /// <summary>Stops a body that is not the range asked for before any of it is stored (a 200 would send the whole file).</summary>
    private bool RangeHeaderMatches()
    {
        long status;
        if (LibCurl.GetInfoLong(Easy, LibCurl.InfoResponseCode, &status) != 0 || status != 206)
        {
            _failure = $"server answered a range request with status {status}, not 206 Partial Content";
            return false;
        }
        if (_contentFirst != BufferStart || _contentLast != BufferStart + BufferLength - 1)
        {
            _failure = $"server sent range {_contentFirst}-{_contentLast} for range {BufferStart}-{BufferStart + BufferLength - 1}";
            return false;
        }
        return true;
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static nuint OnHeader(byte* data, nuint size, nuint count, nint user)
    {
        nuint total = size * count;
        var slot = (CurlSlot)GCHandle.FromIntPtr(user).Target!;
        var line = new ReadOnlySpan<byte>(data, (int)Math.Min(total, int.MaxValue));
        if (CurlHeader.IsStatusLine(line))
            slot._contentFirst = slot._contentLast = -1;
        else if (CurlHeader.TryContentRange(line, out long first, out long last))
            (slot._contentFirst, slot._contentLast) = (first, last);
        return total;
    }

    public void Dispose()
    {
        LibCurl.EasyCleanup(Easy);
        NativeMemory.Free(_buffer);
        NativeMemory.Free(_errors);
        _buffer = null;
        _errors = null;
        _range = null;
        if (_self.IsAllocated)
            _self.Free();
    }
}
