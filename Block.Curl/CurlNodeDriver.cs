using System.Diagnostics;
using Block.Curl.Transfer;
using Block.Drivers;
using Block.Graph;
using Block.Io;

namespace Block.Curl;

/// <summary>
/// One open curl node: reads are served from a slot's fetched range when one covers them, join a running transfer
/// whose range covers them, or start a ranged GET of the request plus the readahead in a free slot, QEMU's rules and
/// so QEMU's Range headers for the same reads.
/// </summary>
/// <remarks>
/// Eight slots, as QEMU's <c>CURL_NUM_STATES</c>: up to eight ranges in flight over the multi handle's connection
/// pool, fewer when the link is fast enough that parallel ranges only cost (<see cref="TransferConcurrency"/>); a
/// read that finds no slot it may use waits for one. A slot keeps its last range until it is reused (the first free slot is
/// reused first), so a read just behind the last one is served without a request. A read that finds its bytes in a
/// slot completes synchronously without allocating; one that waits completes from the transfer thread through a
/// pooled <see cref="CurlRead"/>.
/// </remarks>
internal sealed class CurlNodeDriver : NodeDriver
{
    /// <summary>QEMU's <c>CURL_NUM_STATES</c>.</summary>
    public const int SlotCount = 8;

    /// <summary>
    /// The largest read sent as one range: a larger request is split by the request path. QEMU has no limit (it
    /// allocates a buffer of the request's size); 32 MiB keeps a slot's buffer bounded while every read qemu-img
    /// and the guests make (2 MiB at most for convert) gets QEMU's exact range.
    /// </summary>
    public const int MaxTransferBytes = 32 << 20;

    private const int MaxErrorReports = 100;

    private readonly object _lock = new();
    private readonly CurlSettings _settings;
    private readonly long _length;
    private readonly long _readahead;
    private readonly bool _http;
    private readonly CurlSlot?[] _slots = new CurlSlot?[SlotCount];
    private readonly Queue<CurlRead> _waitingForSlot = new();
    private readonly Stack<CurlRead> _pool = new();
    private readonly TransferConcurrency _concurrency = new(SlotCount);
    private readonly CurlMultiLoop _loop;
    private int _errorReports;

    public CurlNodeDriver(BlockNode node, CurlSettings settings, long length, long readahead, bool http)
        : base(node)
    {
        _settings = settings;
        _length = length;
        _readahead = readahead;
        _http = http;
        _loop = new CurlMultiLoop($"curl {node.NodeName}", OnFinished);
    }

    public override long Length => _length;

    public override string Filename => _settings.Url;

    public override BlockLimits Limits => new() { MaxTransfer = MaxTransferBytes };

    public override long? AllocatedSize => null;

    /// <remarks>QEMU's curl driver has no <c>bdrv_get_info</c>.</remarks>
    public override bool HasDriverInfo => false;

    public override bool HasZeroInit => false;

    public override ValueTask ReadAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        int length = buffers.Length;
        if (length == 0)
            return default;
        lock (_lock)
        {
            if (TryServe(offset, buffers))
                return default;
            var read = Rent();
            var pending = read.Start(this, offset, buffers);
            if (!TryJoin(read) && !TryStart(read))
                _waitingForSlot.Enqueue(read);
            return pending;
        }
    }

    /// <summary>Copies the read from a slot whose fetched range covers it (QEMU's <c>curl_find_buf</c>, first half).</summary>
    private bool TryServe(long offset, IoVector buffers)
    {
        long clampedEnd = Math.Min(offset + buffers.Length, _length);
        foreach (var slot in _slots)
        {
            if (slot is null || slot.Filled == 0)
                continue;
            if (offset >= slot.BufferStart && clampedEnd <= slot.BufferStart + slot.Filled)
            {
                Deliver(slot, offset, buffers);
                return true;
            }
        }
        return false;
    }

    /// <summary>Joins a running transfer whose range covers the read (<c>curl_find_buf</c>, second half).</summary>
    private bool TryJoin(CurlRead read)
    {
        long clampedEnd = Math.Min(read.Offset + read.Target.Length, _length);
        foreach (var slot in _slots)
        {
            if (slot is null || !slot.InUse || slot.Waiters.Count >= CurlSlot.MaxWaiters)
                continue;
            if (read.Offset >= slot.BufferStart && clampedEnd <= slot.BufferStart + slot.BufferLength)
            {
                slot.Waiters.Add(read);
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// Starts a transfer for the read in the first free slot, the read and the readahead up to the end, unless as many
    /// transfers run as the link is worth.
    /// </summary>
    private bool TryStart(CurlRead read)
    {
        for (int i = 0; i < _slots.Length; i++)
        {
            if (_slots[i] is { InUse: true })
                continue;
            if (!_concurrency.TryStart(Stopwatch.GetTimestamp()))
                return false;
            Start(_slots[i] ??= new CurlSlot(_settings, _http), read);
            return true;
        }
        return false;
    }

    private void Start(CurlSlot slot, CurlRead read)
    {
        long wanted = Math.Min(read.Target.Length, _length - read.Offset);
        int length = (int)Math.Min(wanted + _readahead, _length - read.Offset);
        slot.Prepare(read.Offset, length);
        slot.Primary = read;
        slot.PrimaryLength = (int)wanted;
        slot.Waiters.Add(read);
        _loop.Submit(slot);
    }

    /// <summary>A transfer ended (on the transfer thread): its reads get their bytes or its error, then the slot is free.</summary>
    private void OnFinished(CurlSlot slot, int result)
    {
        string? failure = slot.Check(result);
        lock (_lock)
        {
            Exception? error = null;
            if (failure is null)
            {
                slot.Filled = slot.BufferLength;
            }
            else
            {
                error = new BlockException(Errno.EIO, $"curl: {failure}");
                Report(failure);
            }
            foreach (var read in slot.Waiters)
            {
                if (error is null)
                {
                    if (read != slot.Primary)
                        Deliver(slot, read.Offset, read.Target);
                    else if (slot.PrimaryLength < read.Target.Length)
                        read.Target.Slice(slot.PrimaryLength).Clear();
                }
                read.Complete(error);
            }
            slot.Waiters.Clear();
            slot.Primary = null;
            slot.InUse = false;
            _concurrency.Finished(Stopwatch.GetTimestamp(), failure is null ? slot.BufferLength : 0);
            while (_waitingForSlot.TryPeek(out var next) && TryStart(next))
                _waitingForSlot.Dequeue();
        }
    }

    /// <summary>Copies the read's bytes from the slot; bytes past the end of the image read as zeroes, as in QEMU.</summary>
    private void Deliver(CurlSlot slot, long offset, IoVector target)
    {
        var data = slot.Data[(int)(offset - slot.BufferStart)..];
        if (data.Length >= target.Length)
        {
            target.CopyFrom(data[..target.Length]);
            return;
        }
        target.Slice(0, data.Length).CopyFrom(data);
        target.Slice(data.Length).Clear();
    }

    private void Report(string failure)
    {
        if (_errorReports >= MaxErrorReports)
            return;
        _errorReports++;
        Node.Graph.Print($"curl: {failure}\n");
        if (_errorReports == MaxErrorReports)
            Node.Graph.Print("curl: further errors suppressed\n");
    }

    private CurlRead Rent() => _pool.TryPop(out var read) ? read : new CurlRead();

    internal void Return(CurlRead read)
    {
        lock (_lock)
            _pool.Push(read);
    }

    public override async ValueTask DisposeAsync()
    {
        _loop.Dispose();
        foreach (var slot in _slots)
            slot?.Dispose();
        await base.DisposeAsync().ConfigureAwait(false);
    }
}
