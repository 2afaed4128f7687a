using System.Collections.Concurrent;
using System.Numerics;

namespace Block.Io;

/// <summary>
/// A pool of aligned native buffers in power-of-two size classes, shared by bounce buffers, metadata caches and
/// read-modify-write padding.
/// </summary>
/// <remarks>
/// Classes run from 4 KiB to 4 MiB; larger requests are allocated and freed directly. The pool keeps at most
/// <see cref="MaxRetainedBytes"/> idle, so a burst of large requests cannot pin memory for good. Buffers come back
/// uncleared unless the renter asks (<see cref="AlignedBuffer.Return(bool)"/>); a renter must not assume zeros.
/// </remarks>
public sealed class AlignedBufferPool
{
    /// <summary>The alignment every pooled buffer has: 4 KiB, enough for <c>O_DIRECT</c> on every device seen.</summary>
    public const int DefaultAlignment = 4096;

    private const int MinClassShift = 12;
    private const int MaxClassShift = 22;

    private readonly ConcurrentBag<AlignedBuffer>[] _classes;
    private long _retainedBytes;

    /// <summary>Creates a pool that keeps at most <paramref name="maxRetainedBytes"/> idle.</summary>
    public AlignedBufferPool(long maxRetainedBytes = 64L << 20)
    {
        MaxRetainedBytes = maxRetainedBytes;
        _classes = new ConcurrentBag<AlignedBuffer>[MaxClassShift - MinClassShift + 1];
        for (int i = 0; i < _classes.Length; i++)
            _classes[i] = new ConcurrentBag<AlignedBuffer>();
    }

    /// <summary>The process-wide pool.</summary>
    public static AlignedBufferPool Shared { get; } = new();

    /// <summary>The most idle bytes the pool keeps.</summary>
    public long MaxRetainedBytes { get; }

    /// <summary>Rents a buffer of at least <paramref name="minimumLength"/> bytes, 4 KiB aligned. Its contents are undefined.</summary>
    public AlignedBuffer Rent(int minimumLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(minimumLength);
        int shift = Math.Max(MinClassShift, 32 - BitOperations.LeadingZeroCount((uint)Math.Max(minimumLength - 1, 1)));
        if (shift > MaxClassShift)
            return new AlignedBuffer(minimumLength, DefaultAlignment, null);
        if (_classes[shift - MinClassShift].TryTake(out var buffer))
        {
            Interlocked.Add(ref _retainedBytes, -buffer.Capacity);
            return buffer;
        }
        return new AlignedBuffer(1 << shift, DefaultAlignment, this);
    }

    internal bool TryReturn(AlignedBuffer buffer)
    {
        if (Interlocked.Add(ref _retainedBytes, buffer.Capacity) > MaxRetainedBytes)
        {
            Interlocked.Add(ref _retainedBytes, -buffer.Capacity);
            return false;
        }
        int shift = BitOperations.Log2((uint)buffer.Capacity);
        _classes[shift - MinClassShift].Add(buffer);
        return true;
    }
}
