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
/// </remarks>
internal sealed class RequestTracker
{
    private readonly object _lock = new();
    private readonly List<TrackedRequest> _active = [];
    private long _sequence;

    /// <summary>Registers <c>[start, end)</c> and waits until no earlier conflicting request is in flight.</summary>
    public ValueTask<TrackedRequest> BeginAsync(long start, long end, bool serialising)
    {
        TrackedRequest request;
        List<Task>? waits = null;
        lock (_lock)
        {
            request = new TrackedRequest(start, end, serialising, ++_sequence);
            foreach (var other in _active)
            {
                if ((other.Serialising || serialising) && other.Start < end && start < other.End)
                    (waits ??= []).Add(other.Completion.Task);
            }
            _active.Add(request);
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

    /// <summary>Removes <paramref name="request"/> and wakes requests waiting for it.</summary>
    public void End(TrackedRequest request)
    {
        lock (_lock)
            _active.Remove(request);
        request.Completion.TrySetResult();
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

/// <summary>One registered request.</summary>
internal sealed class TrackedRequest
{
    public TrackedRequest(long start, long end, bool serialising, long sequence)
    {
        Start = start;
        End = end;
        Serialising = serialising;
        Sequence = sequence;
    }

    public long Start { get; }

    public long End { get; }

    public bool Serialising { get; }

    public long Sequence { get; }

    public TaskCompletionSource Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}
