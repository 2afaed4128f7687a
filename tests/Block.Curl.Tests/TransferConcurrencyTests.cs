using Block.Curl.Transfer;

namespace Block.Curl.Tests;

/// <summary>A curl node keeps as few ranges in flight as give the link's full throughput, found by measuring.</summary>
public sealed class TransferConcurrencyTests
{
    private const long MiB = 1 << 20;

    /// <summary>
    /// Runs <paramref name="windows"/> measurement windows with every slot the limit gives kept busy; each transfer of
    /// <paramref name="bytes"/> takes <paramref name="ticksAt"/>(limit) ticks, all in flight together.
    /// </summary>
    private static long Drive(TransferConcurrency policy, int windows, long bytes, Func<int, long> ticksAt, long now = 0)
    {
        for (int w = 0; w < windows; w++)
        {
            int done = 0;
            while (done < TransferConcurrency.WindowTransfers)
            {
                int limit = policy.Limit;
                int started = 0;
                while (started < limit && policy.TryStart(now))
                    started++;
                Assert.False(policy.TryStart(now), "the limit let one more transfer start");
                now += ticksAt(limit);
                for (int i = 0; i < started; i++)
                    policy.Finished(now, bytes);
                done += started;
            }
        }
        return now;
    }

    [Fact]
    public void A_new_node_lets_qemus_eight_ranges_run()
    {
        Assert.Equal(8, new TransferConcurrency(8).Limit);
    }

    [Fact]
    public void A_link_that_parallel_ranges_do_not_speed_up_settles_at_one_range()
    {
        var policy = new TransferConcurrency(8);
        // Bandwidth-bound: n ranges of 2 MiB together take n times as long as one.
        Drive(policy, 10, 2 * MiB, limit => 1_000 * limit);
        Assert.Equal(1, policy.SettledLimit);
    }

    [Fact]
    public void A_link_where_parallel_ranges_hide_latency_keeps_all_eight()
    {
        var policy = new TransferConcurrency(8);
        // Latency-bound: any number of ranges together take as long as one.
        Drive(policy, 30, 2 * MiB, _ => 50_000);
        Assert.Equal(8, policy.SettledLimit);
    }

    [Fact]
    public void The_limit_settles_where_more_ranges_stop_paying()
    {
        var policy = new TransferConcurrency(8);
        // Up to two ranges hide the latency; beyond two the bandwidth is full.
        Drive(policy, 30, 2 * MiB, limit => limit <= 2 ? 10_000 : 5_000 * limit);
        Assert.Equal(2, policy.SettledLimit);
    }

    [Fact]
    public void A_settled_limit_is_tried_again_and_follows_a_link_that_changed()
    {
        var policy = new TransferConcurrency(8);
        long now = Drive(policy, 10, 2 * MiB, limit => 1_000 * limit);
        Assert.Equal(1, policy.SettledLimit);
        // The server now answers slowly: ranges in parallel pay again.
        Drive(policy, 60, 2 * MiB, _ => 50_000, now);
        Assert.Equal(8, policy.SettledLimit);
    }

    [Fact]
    public void A_limit_settled_between_one_and_eight_is_tried_upwards_too()
    {
        var policy = new TransferConcurrency(8);
        long now = Drive(policy, 30, 2 * MiB, limit => limit <= 2 ? 10_000 : 5_000 * limit);
        Assert.Equal(2, policy.SettledLimit);
        // The server now answers slowly: the next tries go past two, up to all eight.
        Drive(policy, 60, 2 * MiB, _ => 50_000, now);
        Assert.Equal(8, policy.SettledLimit);
    }

    [Fact]
    public void Windows_in_which_the_limit_held_nothing_back_leave_it_alone()
    {
        var policy = new TransferConcurrency(8);
        long now = 0;
        // One read at a time, each waiting for the last: the limit of eight is never reached.
        for (int i = 0; i < 20 * TransferConcurrency.WindowTransfers; i++)
        {
            Assert.True(policy.TryStart(now));
            now += 1_000;
            policy.Finished(now, 2 * MiB);
        }
        Assert.Equal(8, policy.Limit);
        Assert.Equal(0, policy.InFlight);
    }

    [Fact]
    public void Failed_transfers_count_as_no_bytes_and_free_their_slot()
    {
        var policy = new TransferConcurrency(2);
        Assert.True(policy.TryStart(0));
        Assert.True(policy.TryStart(0));
        Assert.False(policy.TryStart(0));
        policy.Finished(10, 0);
        Assert.Equal(1, policy.InFlight);
        Assert.True(policy.TryStart(10));
    }
}
