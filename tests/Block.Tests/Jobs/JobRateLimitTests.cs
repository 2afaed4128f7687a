using Block.Jobs;

namespace Block.Tests.Jobs;

/// <summary>
/// The job speed limit as QEMU 7.2 computes it, checked on given times: no clock is read and nothing sleeps.
/// </summary>
public sealed class JobRateLimitTests
{
    private const long Ms = 1_000_000;

    /// <summary>Some time after the clock's start (QEMU's clock never reads 0).</summary>
    private const long T0 = 1000 * Ms;

    [Fact]
    public void Without_a_speed_nothing_waits()
    {
        var limit = new JobRateLimit();
        Assert.Equal(0, limit.CalculateDelay(0, 1L << 40));
        Assert.Equal(0, limit.CalculateDelay(5, 0));
    }

    [Fact]
    public void The_first_chunk_goes_at_once_and_the_next_waits_for_the_bytes_it_went_over()
    {
        var limit = new JobRateLimit();
        limit.SetSpeed(1 << 20); // 1 MiB/s: 104857 bytes per 100 ms slice
        // A 512 KiB chunk is dispatched at t = 0 without asking; then the job asks how long to sleep.
        long delay = limit.CalculateDelay(0, 512 * 1024);
        Assert.Equal((long)(524288.0 / 104857 * 100 * Ms), delay); // ≈ 500 ms
        Assert.Equal(delay, limit.CalculateDelay(0, 0));
        // Woken early (a pause, say) at 200 ms: the remaining 300 ms are still owed.
        Assert.Equal(delay - 200 * Ms, limit.CalculateDelay(200 * Ms, 0));
        // Once the stretched slice is over, accounting starts afresh.
        Assert.Equal(0, limit.CalculateDelay(delay + 1, 0));
    }

    [Fact]
    public void Bytes_within_a_slice_quota_do_not_wait()
    {
        var limit = new JobRateLimit();
        limit.SetSpeed(10 * 65536); // 65536 bytes per slice
        Assert.Equal(0, limit.CalculateDelay(T0, 65535));
        // Reaching the quota within the slice: wait for the slice's end.
        Assert.Equal(100 * Ms - 10 * Ms, limit.CalculateDelay(T0 + 10 * Ms, 1));
    }

    [Fact]
    public void A_speed_below_ten_bytes_a_second_still_allows_one_byte_per_slice()
    {
        var limit = new JobRateLimit();
        limit.SetSpeed(1);
        // 524288 bytes at 1 byte per 100 ms slice: QSD's stream at speed 1 sleeps for 14.5 hours after its first chunk.
        Assert.Equal(524288 * 100 * Ms, limit.CalculateDelay(0, 524288));
    }

    [Fact]
    public void Turning_the_limit_off_ends_the_wait_and_a_negative_speed_is_refused_with_qemus_text()
    {
        var limit = new JobRateLimit();
        limit.SetSpeed(1 << 20);
        Assert.True(limit.CalculateDelay(0, 1 << 20) > 0);
        limit.SetSpeed(0);
        Assert.Equal(0, limit.CalculateDelay(1, 0));
        var e = Assert.Throws<BlockOptionsException>(() => limit.SetSpeed(-1));
        Assert.Equal("Parameter 'speed' expects a non-negative value", e.Message);
        Assert.Equal(0, limit.Speed);
    }
}
