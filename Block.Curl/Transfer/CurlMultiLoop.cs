using System.Collections.Concurrent;
using Block.Curl.Interop;

namespace Block.Curl.Transfer;

/// <summary>
/// libcurl's multi interface on one thread: the node's transfers run side by side over the multi handle's shared
/// connection pool, and each finished transfer is handed back with its result on this thread.
/// </summary>
/// <remarks>
/// One thread per node, whatever the number of requests in flight: <c>curl_multi_poll</c> sleeps on every socket
/// at once and <c>curl_multi_wakeup</c> (thread-safe) breaks it when a transfer is submitted. libcurl's write
/// callbacks run here too, so a transfer's buffer has one writer and needs no lock.
/// </remarks>
internal sealed unsafe class CurlMultiLoop : IDisposable
{
    private readonly nint _multi;
    private readonly ConcurrentQueue<CurlSlot> _submitted = new();
    private readonly Dictionary<nint, CurlSlot> _running = [];
    private readonly Action<CurlSlot, int> _finished;
    private readonly Thread _thread;
    private volatile bool _stopping;

    /// <summary>Starts the loop; <paramref name="finished"/> gets each transfer and its <c>CURLcode</c>.</summary>
    public CurlMultiLoop(string name, Action<CurlSlot, int> finished)
    {
        _multi = LibCurl.MultiInit();
        if (_multi == 0)
            throw new BlockException(Errno.ENOMEM, "curl_multi_init failed");
        _finished = finished;
        _thread = new Thread(Run) { IsBackground = true, Name = name };
        _thread.Start();
    }

    /// <summary>Hands a configured transfer to the loop.</summary>
    public void Submit(CurlSlot slot)
    {
        _submitted.Enqueue(slot);
        LibCurl.MultiWakeup(_multi);
    }

    private void Run()
    {
        int running = 0, fds = 0, queued = 0;
        while (true)
        {
            while (_submitted.TryDequeue(out var slot))
            {
                int rc = LibCurl.MultiAddHandle(_multi, slot.Easy);
                if (rc != 0)
                    _finished(slot, -rc);
                else
                    _running.Add(slot.Easy, slot);
            }
            if (_stopping)
                break;
            LibCurl.MultiPerform(_multi, &running);
            LibCurl.CurlMsg* message;
            while ((message = LibCurl.MultiInfoRead(_multi, &queued)) != null)
            {
                if (message->Msg != LibCurl.MsgDone)
                    continue;
                nint easy = message->EasyHandle;
                int result = message->Result;
                LibCurl.MultiRemoveHandle(_multi, easy);
                if (_running.Remove(easy, out var done))
                    _finished(done, result);
            }
            if (_submitted.IsEmpty)
                LibCurl.MultiPoll(_multi, 0, 0, 1000, &fds);
        }
        foreach (var easy in _running.Keys)
            LibCurl.MultiRemoveHandle(_multi, easy);
        _running.Clear();
    }

    /// <summary>Stops the loop (the node is drained: nothing is in flight) and frees the multi handle.</summary>
    public void Dispose()
    {
        _stopping = true;
        LibCurl.MultiWakeup(_multi);
        _thread.Join();
        LibCurl.MultiCleanup(_multi);
    }
}
