using System.Text.Json.Nodes;
using Block.TestSupport;

namespace Block.Qmp.Tests;

/// <summary>QEMU's monitor rate limit on quorum's events, on a clock the test moves.</summary>
public sealed class EventRateLimitTests
{
    private static JsonObject Bad(string node, int sector) => new()
    {
        ["event"] = "QUORUM_REPORT_BAD",
        ["data"] = new JsonObject { ["type"] = "read", ["node-name"] = node, ["sector-num"] = sector, ["sectors-count"] = 8 },
    };

    private static void Offer(QmpEventThrottle throttle, JsonObject message)
    {
        var data = (JsonObject?)message["data"];
        Assert.True(QmpEventThrottle.IsLimited((string)message["event"]!, data, out string? key));
        throttle.Offer((string)message["event"]!, key, message);
    }

    private static List<string> Sent(List<JsonObject> sent) =>
        [.. sent.Select(m => $"{m["event"]} {m["data"]?["node-name"]} {m["data"]?["sector-num"]}")];

    [Fact]
    public void The_first_event_goes_out_at_once_and_the_newest_of_its_second_goes_out_when_the_second_ends()
    {
        var time = new ManualTimeProvider();
        var sent = new List<JsonObject>();
        using var throttle = new QmpEventThrottle(time, sent.Add);
        Offer(throttle, Bad("r1", 0));
        Offer(throttle, Bad("r1", 8));
        Offer(throttle, Bad("r1", 16));
        Assert.Equal(["QUORUM_REPORT_BAD r1 0"], Sent(sent));
        time.Advance(TimeSpan.FromMilliseconds(999));
        Assert.Single(sent);
        time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.Equal(["QUORUM_REPORT_BAD r1 0", "QUORUM_REPORT_BAD r1 16"], Sent(sent));
        // The late one opened a new second: an event in it waits too.
        Offer(throttle, Bad("r1", 24));
        Assert.Equal(2, sent.Count);
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(3, sent.Count);
        // A second with nothing to send closes the window; the next event goes out at once.
        time.Advance(TimeSpan.FromSeconds(1));
        Offer(throttle, Bad("r1", 32));
        Assert.Equal(["QUORUM_REPORT_BAD r1 0", "QUORUM_REPORT_BAD r1 16", "QUORUM_REPORT_BAD r1 24", "QUORUM_REPORT_BAD r1 32"], Sent(sent));
    }

    [Fact]
    public void Report_bad_is_limited_per_child_and_failure_once_for_all()
    {
        var time = new ManualTimeProvider();
        var sent = new List<JsonObject>();
        using var throttle = new QmpEventThrottle(time, sent.Add);
        Offer(throttle, Bad("r1", 0));
        Offer(throttle, Bad("r2", 0));
        var failure = new JsonObject { ["event"] = "QUORUM_FAILURE", ["data"] = new JsonObject { ["reference"] = "q", ["sector-num"] = 0, ["sectors-count"] = 8 } };
        Offer(throttle, failure);
        Offer(throttle, (JsonObject)failure.DeepClone());
        Assert.Equal(["QUORUM_REPORT_BAD r1 0", "QUORUM_REPORT_BAD r2 0", "QUORUM_FAILURE  0"], Sent(sent));
        time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(4, sent.Count);
    }

    [Fact]
    public void Other_events_are_not_limited()
    {
        Assert.False(QmpEventThrottle.IsLimited("BLOCK_IO_ERROR", new JsonObject(), out _));
        Assert.False(QmpEventThrottle.IsLimited("BLOCK_JOB_COMPLETED", new JsonObject(), out _));
    }
}
