using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using Block.Graph;
using Block.Metrics;

namespace Block.Qcow2.Metadata;

/// <summary>
/// The qcow2 metadata caches' instruments (<see cref="BlockMetrics.CacheHits"/>, <see cref="BlockMetrics.CacheMisses"/>) on
/// a meter named <see cref="BlockMetrics.MeterName"/>: listeners that ask for the <c>Block</c> meter get them too.
/// </summary>
/// <remarks>Without a listener a lookup pays one read of a field; the lock-free read hit path stays as it was.</remarks>
internal static class Qcow2CacheMetrics
{
    private static readonly Meter s_meter = new(BlockMetrics.MeterName, typeof(Qcow2CacheMetrics).Assembly.GetName().Version?.ToString());
    private static readonly Counter<long> s_hits = s_meter.CreateCounter<long>(BlockMetrics.CacheHits, "{lookup}", "qcow2 metadata cache hits");
    private static readonly Counter<long> s_misses = s_meter.CreateCounter<long>(BlockMetrics.CacheMisses, "{lookup}", "qcow2 metadata cache misses");

    /// <summary>Counts a hit of <paramref name="cache"/> (<c>l2</c> or <c>refcount</c>) of the qcow2 node <paramref name="node"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Hit(BlockNode node, string cache)
    {
        if (s_hits.Enabled)
            Record(s_hits, node, cache);
    }

    /// <summary>Counts a miss of <paramref name="cache"/> of the qcow2 node <paramref name="node"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Miss(BlockNode node, string cache)
    {
        if (s_misses.Enabled)
            Record(s_misses, node, cache);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void Record(Counter<long> counter, BlockNode node, string cache) =>
        counter.Add(1, new KeyValuePair<string, object?>(BlockMetrics.NodeTag, node.NodeName), new KeyValuePair<string, object?>(BlockMetrics.CacheTag, cache));
}
