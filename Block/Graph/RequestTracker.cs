namespace Block.Graph;

/// <summary>
/// Serialises overlapping requests where read-modify-write makes order matter (QEMU's tracked requests).
/// </summary>
/// <remarks>
/// <para>A write narrower than the node's alignment reads the surrounding aligned blocks, patches them and writes them
/// back. If another write to those blocks ran in between, its bytes would be overwritten with stale ones. So a
/// <em>serialising</em> request (one that pads) waits for every earlier request overlapping its padded range, and
/// every request waits for earlier overlapping serialising ones.</para>
/// <para>A request waits only for requests registered before it, so waits cannot form a cycle. Nodes whose alignment
/// is one byte never pad and have no tracker at all: tracking costs nothing where it cannot matter.</para>
/// <para>Every write to a format node (512-byte alignment) registers here, so registering allocates nothing: ended
/// requests are kept for reuse, and the completion a later request waits on is made only when one has to wait. Before
/// that, each 4 KiB write to a vdi, vpc, vhdx, qed or parallels image allocated 144 B (the request, its
/// <see cref="TaskCompletionSource"/> and its task; bench/FormatReadBenchmarks.cs, <c>RandomWrite4K</c>).</para>
/// </remarks>
internal sealed class RequestTracker
{
    /// <summary>Ended requests kept for reuse: more than the requests a node has in flight at once in practice.</summary>
    private const int PoolLimit = 64;

    private readonly object _lock = new();
    private readonly List<TrackedRequest> _active = [];
    private readonly Stack<TrackedRequest> _pool = new();

    /// <summary>Registers <c>[start, end)</c> and waits until no earlier conflicting request is in flight.</summary>
    public ValueTask<TrackedRequest> BeginAsync(long start, long end, bool serialising)
    {
        TrackedRequest request;
        List<Task>? waits = null;
        lock (_lock)
        {
            foreach (var other in _active)
            {
                if ((other.Serialising || serialising) && other.Overlaps(start, end))
                    (waits ??= []).Add(other.CompletionUnderLock().Task);
            }
            request = RegisterLocked(start, end, serialising);
        }
        if (waits is null)
            return new ValueTask<TrackedRequest>(request);
        return WaitAsync(request, waits);
    }

    private static async ValueTask<TrackedRequest> WaitAsync(TrackedRequest request, List<Task> waits)
    {
        await Task.WhenAll(waits).ConfigureAwait(false);
        return request;
    }

    /// <summary>
    /// Registers a non-serialising <c>[start, end)</c> if no serialising request overlaps it now, so that it need not
    /// wait; false, registering nothing, if one does (the caller then takes <see cref="BeginAsync"/>). An aligned
    /// write to an <c>O_DIRECT</c> file takes this path and allocates nothing.
    /// </summary>
    public bool TryBegin(long start, long end, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out TrackedRequest? request)
    {
        lock (_lock)
        {
            foreach (var other in _active)
            {
                if (other.Serialising && other.Overlaps(start, end))
                {
                    request = null;
                    return false;
                }
            }
            request = RegisterLocked(start, end, serialising: false);
            return true;
        }
    }

    /// <summary>Takes a reused record (or a new one) for <c>[start, end)</c> and makes it active; under the lock.</summary>
    private TrackedRequest RegisterLocked(long start, long end, bool serialising)
    {
        var request = _pool.TryPop(out var reused) ? reused : new TrackedRequest();
        request.Reset(start, end, serialising);
        _active.Add(request);
        return request;
    }

    /// <summary>
    /// Removes <paramref name="request"/> and wakes requests waiting for it; the caller must not use
    /// <paramref name="request"/> afterwards (it is reused).
    /// </summary>
    public void End(TrackedRequest request)
    {
        TaskCompletionSource? completion;
        lock (_lock)
        {
            completion = request.TakeCompletion();
            // Only a request this tracker had registered is reused (never one ended twice).
            if (_active.Remove(request) && _pool.Count < PoolLimit)
                _pool.Push(request);
        }
        completion?.TrySetResult();
    }

    /// <summary>Number of requests registered now.</summary>
    public int Count
    {
        get
        {
            lock (_lock)
                return _active.Count;
        }
    }
}

/// <summary>One registered request (reused by its <see cref="RequestTracker"/> once ended).</summary>
internal sealed class TrackedRequest
{
    private TaskCompletionSource? _completion;

    public long Start { get; private set; }

    public long End { get; private set; }

    public bool Serialising { get; private set; }

    internal void Reset(long start, long end, bool serialising)
    {
        Start = start;
        End = end;
        Serialising = serialising;
    }

    /// <summary>True if this request's range meets <c>[start, end)</c>.</summary>
    internal bool Overlaps(long start, long end) => Start < end && start < End;

    /// <summary>What a later request waits on; made on first need. Only under the tracker's lock.</summary>
    internal TaskCompletionSource CompletionUnderLock() =>
        _completion ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Detaches the completion (null when nobody waited). Only under the tracker's lock.</summary>
    internal TaskCompletionSource? TakeCompletion()
    {
        var completion = _completion;
        _completion = null;
        return completion;
    }
}
