namespace Block.Graph;

/// <summary>
/// The requests in flight on one node or backend, counted in per-core stripes, each on its own cache line: threads on different
/// cores begin and end requests without writing a shared line, so a read hit path on two cores scales.
/// </summary>
/// <remarks>
/// A request ends on the stripe it began on (the token <see cref="Begin"/> returns), whatever thread ends it, so every
/// stripe holds the number of requests in flight that began on it and is never negative. <see cref="IsZero"/> reads
/// the stripes one after the other: a request in flight during the whole read is always seen; one that begins
/// meanwhile may be missed, as it would be by a single counter read a moment earlier.
/// </remarks>
internal sealed class InFlightCounter
{
    /// <summary>Longs between stripes: 128 bytes, two cache lines (adjacent-line prefetch pairs them).</summary>
    private const int Stride = 16;

    private readonly long[] _stripes;
    private readonly int _mask;
    private TaskCompletionSource? _drainWaiter;

    public InFlightCounter()
    {
        int n = (int)System.Numerics.BitOperations.RoundUpToPowerOf2((uint)Math.Clamp(Environment.ProcessorCount, 1, 64));
        _mask = n - 1;
        // Stripe s lives at (s + 1) * Stride: none shares a line with the array's header.
        _stripes = new long[(n + 1) * Stride];
    }

    /// <summary>Counts a request in; returns the token to pass to <see cref="End"/>.</summary>
    public int Begin()
    {
        int index = ((Thread.GetCurrentProcessorId() & _mask) + 1) * Stride;
        Interlocked.Increment(ref _stripes[index]);
        return index;
    }

    /// <summary>Counts the request that <see cref="Begin"/> returned <paramref name="token"/> for out.</summary>
    public void End(int token)
    {
        Interlocked.Decrement(ref _stripes[token]);
        // Only while someone drains: the count is then summed over the stripes (the decrement above is a full fence,
        // and so is the waiter's publication, so either this sees the waiter or the waiter sees the decrement).
        if (Volatile.Read(ref _drainWaiter) is { } waiter && IsZero)
            waiter.TrySetResult();
    }

    /// <summary>Completes when no request is in flight (requests that begin meanwhile count as well).</summary>
    public async Task WaitIdleAsync()
    {
        while (!IsZero)
        {
            var waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var existing = Interlocked.CompareExchange(ref _drainWaiter, waiter, null) ?? waiter;
            if (IsZero)
                break;
            await existing.Task.ConfigureAwait(false);
            Interlocked.CompareExchange(ref _drainWaiter, null, existing);
        }
    }

    /// <summary>The number of requests in flight (see the remarks for what a concurrent read sees).</summary>
    public long Count
    {
        get
        {
            long sum = 0;
            for (int i = Stride; i < _stripes.Length; i += Stride)
                sum += Volatile.Read(ref _stripes[i]);
            return sum;
        }
    }

    /// <summary>True when no request is in flight.</summary>
    public bool IsZero => Count == 0;
}
