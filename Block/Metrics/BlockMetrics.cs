using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using Block.Graph;

namespace Block.Metrics;

/// <summary>
/// The <c>Block</c> meter (<see cref="System.Diagnostics.Metrics"/>), which <c>dotnet-counters monitor --counters Block</c>
/// and OpenTelemetry's <c>AddMeter("Block")</c> read as they are: per backend, the operations, bytes and latency of
/// reads, writes, write-zeroes, discards and flushes, and the requests in flight; per qcow2 node, the metadata cache's
/// hits and misses (from <c>Block.Qcow2</c>, on a meter of the same name).
/// </summary>
/// <remarks>
/// <para>Tags: <see cref="DeviceTag"/> is the backend's name (its root node's name for an unnamed backend),
/// <see cref="OperationTag"/> one of <c>read</c>, <c>write</c>, <c>write_zeroes</c>, <c>discard</c>, <c>flush</c>;
/// only requests that succeed are counted. Durations are in seconds, from the backend's call to the request's end.</para>
/// <para>Without a listener the request path pays two reads of a field per request and nothing else: no clock read, no
/// allocation (an instrument is enabled only while a listener subscribes to it). The in-flight count is observed:
/// a listener's collection sums the per-node counters the request path keeps anyway.</para>
/// </remarks>
public static class BlockMetrics
{
    /// <summary>The meter's name.</summary>
    public const string MeterName = "Block";

    /// <summary>Counter of completed requests (<c>{operation}</c>), tagged by device and operation.</summary>
    public const string Operations = "block.io.operations";

    /// <summary>Counter of bytes read, written, zeroed or discarded (<c>By</c>), tagged by device and operation.</summary>
    public const string Bytes = "block.io.bytes";

    /// <summary>Histogram of request durations (<c>s</c>), tagged by device and operation.</summary>
    public const string Duration = "block.io.duration";

    /// <summary>Observed up-down counter of requests in flight on each backend's root node (<c>{request}</c>).</summary>
    public const string InFlight = "block.io.in_flight";

    /// <summary>Counter of qcow2 metadata cache lookups that found the table cached, tagged by node and cache.</summary>
    public const string CacheHits = "block.qcow2.cache.hits";

    /// <summary>Counter of qcow2 metadata cache lookups that read the table from the image file, tagged by node and cache.</summary>
    public const string CacheMisses = "block.qcow2.cache.misses";

    /// <summary>Tag: the backend (device) name.</summary>
    public const string DeviceTag = "block.device";

    /// <summary>Tag: the request type.</summary>
    public const string OperationTag = "block.io.operation";

    /// <summary>Tag: the node name.</summary>
    public const string NodeTag = "block.node";

    /// <summary>Tag: which qcow2 metadata cache (<c>l2</c> or <c>refcount</c>).</summary>
    public const string CacheTag = "block.qcow2.cache";

    private static readonly Meter s_meter = new(MeterName, typeof(BlockMetrics).Assembly.GetName().Version?.ToString());
    private static readonly Counter<long> s_operations = s_meter.CreateCounter<long>(Operations, "{operation}", "Block requests completed");
    private static readonly Counter<long> s_bytes = s_meter.CreateCounter<long>(Bytes, "By", "Bytes read, written, zeroed or discarded");
    private static readonly Histogram<double> s_duration = s_meter.CreateHistogram<double>(Duration, "s", "Block request duration");
    private static readonly ConditionalWeakTable<BlockGraph, object?> s_graphs = [];

    static BlockMetrics()
    {
        s_meter.CreateObservableUpDownCounter(InFlight, ObserveInFlight, "{request}", "Block requests in flight");
    }

    /// <summary>Whether a listener wants request durations: the request path reads the clock only then.</summary>
    internal static bool TimesRequests
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => s_duration.Enabled;
    }

    /// <summary>Whether a listener wants any of the request instruments.</summary>
    internal static bool MeasuresRequests
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => s_operations.Enabled || s_bytes.Enabled || s_duration.Enabled;
    }

    /// <summary>Records one completed request; <paramref name="startTicks"/> 0 records no duration.</summary>
    [MethodImpl(MethodImplOptions.NoInlining)]
    internal static void RecordRequest(BlockBackend backend, string operation, long bytes, long startTicks)
    {
        var device = new KeyValuePair<string, object?>(DeviceTag, backend.MetricsName);
        var kind = new KeyValuePair<string, object?>(OperationTag, operation);
        s_operations.Add(1, device, kind);
        if (bytes > 0)
            s_bytes.Add(bytes, device, kind);
        if (startTicks != 0 && s_duration.Enabled)
            s_duration.Record(Stopwatch.GetElapsedTime(startTicks).TotalSeconds, device, kind);
    }

    /// <summary>Makes <paramref name="graph"/>'s backends part of the in-flight observation (weakly held).</summary>
    internal static void Track(BlockGraph graph) => s_graphs.AddOrUpdate(graph, null);

    /// <summary>Leaves <paramref name="graph"/> out of the in-flight observation.</summary>
    internal static void Untrack(BlockGraph graph) => s_graphs.Remove(graph);

    private static IEnumerable<Measurement<long>> ObserveInFlight()
    {
        foreach (var (graph, _) in s_graphs)
        {
            foreach (var backend in graph.Backends)
            {
                if (backend.Root is { } root)
                    yield return new Measurement<long>(root.InFlight, new KeyValuePair<string, object?>(DeviceTag, backend.MetricsName));
            }
        }
    }
}
