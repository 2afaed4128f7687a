namespace Block.Throttle;

/// <summary>
/// The limits of one leaky bucket: an average rate, an optional burst rate and how long a burst may last.
/// </summary>
/// <param name="Average">Units (bytes or operations) per second; 0 = no limit.</param>
/// <param name="Max">Burst rate in units per second; 0 = no burst beyond a tenth of a second of <paramref name="Average"/>.</param>
/// <param name="BurstLengthSeconds">How many seconds a burst at <paramref name="Max"/> may last (QEMU's default 1; the
/// struct's <c>default</c> has 0, which validation refuses, so start from <see cref="None"/>).</param>
public readonly record struct ThrottleLimit(long Average, long Max = 0, long BurstLengthSeconds = 1)
{
    /// <summary>No limit.</summary>
    public static ThrottleLimit None => new(0);
}
