using Block.TestSupport;
using Block.Throttle;

namespace Block.Tests.Throttle;

/// <summary>
/// Runs requests through throttle group members on a <see cref="ManualTimeProvider"/>: every request is submitted at
/// its arrival time, the clock jumps from timer to timer, and the time each request was admitted is recorded.
/// </summary>
internal static class ThrottleRun
{
    /// <summary>A request: who sends it, when (seconds), direction and size.</summary>
    public readonly record struct Request(int Member, double ArrivalSeconds, bool Write, long Bytes);

    /// <summary>Admission times in seconds, in request order.</summary>
    public static double[] Run(ManualTimeProvider clock, IReadOnlyList<ThrottleGroupMember> members, IReadOnlyList<Request> requests)
    {
        long start = clock.Elapsed.Ticks;
        long Arrival(int i) => (long)Math.Round(requests[i].ArrivalSeconds * TimeSpan.TicksPerSecond);
        var admitted = new double[requests.Count];
        var pending = new List<(int Index, Task Task)>();
        var order = Enumerable.Range(0, requests.Count).OrderBy(Arrival).ToList();
        int next = 0;
        for (int steps = 0; next < order.Count || pending.Count > 0; steps++)
        {
            if (steps > 10 * requests.Count + 100)
                throw new InvalidOperationException($"no progress after {steps} clock steps: {pending.Count} requests wait, next timer {clock.NextDue}");
            long now = clock.Elapsed.Ticks - start;
            while (next < order.Count && Arrival(order[next]) <= now)
            {
                var r = requests[order[next]];
                pending.Add((order[next], members[r.Member].AdmitAsync(r.Write, r.Bytes).AsTask()));
                next++;
            }
            pending.RemoveAll(p =>
            {
                if (!p.Task.IsCompleted)
                    return false;
                admitted[p.Index] = (double)now / TimeSpan.TicksPerSecond;
                return true;
            });
            long? toArrival = next < order.Count ? Arrival(order[next]) - now : null;
            long? toTimer = clock.NextDue?.Ticks;
            if (pending.Count > 0 && toTimer is null && toArrival is null)
                throw new InvalidOperationException("requests wait with no timer armed");
            long step = Math.Min(toArrival ?? long.MaxValue, toTimer ?? long.MaxValue);
            if (step != long.MaxValue)
                clock.Advance(TimeSpan.FromTicks(step));
        }
        return admitted;
    }

    /// <summary>A group on <paramref name="clock"/> with <paramref name="count"/> members.</summary>
    public static (ThrottleGroup Group, ThrottleGroupMember[] Members) Group(ManualTimeProvider clock, ThrottleConfig config, int count = 1)
    {
        var group = new ThrottleGroup("g", config, clock);
        return (group, Enumerable.Range(0, count).Select(i => group.Join($"m{i}")).ToArray());
    }
}
