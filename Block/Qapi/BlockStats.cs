using System.Text.Json.Serialization;

namespace Block.Qapi;

/// <summary>QAPI <c>BlockStats</c>: statistics of a backend or node, with its file and backing children.</summary>
public sealed record BlockStats
{
    /// <summary>The backend name, for backend entries.</summary>
    [JsonPropertyName("device")] public string? Device { get; init; }

    /// <summary>The node name.</summary>
    [JsonPropertyName("node-name")] public string? NodeName { get; init; }

    /// <summary>The counters.</summary>
    [JsonPropertyName("stats")] public required BlockDeviceStats Stats { get; init; }

    /// <summary>Statistics of the node's file child.</summary>
    [JsonPropertyName("parent")] public BlockStats? Parent { get; init; }

    /// <summary>Statistics of the node's backing child.</summary>
    [JsonPropertyName("backing")] public BlockStats? Backing { get; init; }
}

/// <summary>QAPI <c>BlockDeviceStats</c>: I/O accounting.</summary>
public sealed record BlockDeviceStats
{
    /// <summary>Bytes read.</summary>
    [JsonPropertyName("rd_bytes")] public long RdBytes { get; init; }

    /// <summary>Bytes written.</summary>
    [JsonPropertyName("wr_bytes")] public long WrBytes { get; init; }

    /// <summary>Reads completed.</summary>
    [JsonPropertyName("rd_operations")] public long RdOperations { get; init; }

    /// <summary>Writes completed.</summary>
    [JsonPropertyName("wr_operations")] public long WrOperations { get; init; }

    /// <summary>Flushes completed.</summary>
    [JsonPropertyName("flush_operations")] public long FlushOperations { get; init; }

    /// <summary>Total flush latency.</summary>
    [JsonPropertyName("flush_total_time_ns")] public long FlushTotalTimeNs { get; init; }

    /// <summary>Total write latency.</summary>
    [JsonPropertyName("wr_total_time_ns")] public long WrTotalTimeNs { get; init; }

    /// <summary>Total read latency.</summary>
    [JsonPropertyName("rd_total_time_ns")] public long RdTotalTimeNs { get; init; }

    /// <summary>The end of the highest write (per node).</summary>
    [JsonPropertyName("wr_highest_offset")] public long WrHighestOffset { get; init; }

    /// <summary>Reads merged into other reads.</summary>
    [JsonPropertyName("rd_merged")] public long RdMerged { get; init; }

    /// <summary>Writes merged into other writes.</summary>
    [JsonPropertyName("wr_merged")] public long WrMerged { get; init; }

    /// <summary>Nanoseconds since the last I/O; absent before the first.</summary>
    [JsonPropertyName("idle_time_ns")] public long? IdleTimeNs { get; init; }

    /// <summary>Reads that failed.</summary>
    [JsonPropertyName("failed_rd_operations")] public long FailedRdOperations { get; init; }

    /// <summary>Writes that failed.</summary>
    [JsonPropertyName("failed_wr_operations")] public long FailedWrOperations { get; init; }

    /// <summary>Flushes that failed.</summary>
    [JsonPropertyName("failed_flush_operations")] public long FailedFlushOperations { get; init; }

    /// <summary>Reads rejected before submission (out of range).</summary>
    [JsonPropertyName("invalid_rd_operations")] public long InvalidRdOperations { get; init; }

    /// <summary>Writes rejected before submission.</summary>
    [JsonPropertyName("invalid_wr_operations")] public long InvalidWrOperations { get; init; }

    /// <summary>Flushes rejected before submission.</summary>
    [JsonPropertyName("invalid_flush_operations")] public long InvalidFlushOperations { get; init; }

    /// <summary>True if invalid requests count towards idle time.</summary>
    [JsonPropertyName("account_invalid")] public bool AccountInvalid { get; init; }

    /// <summary>True if failed requests count towards latency and idle time.</summary>
    [JsonPropertyName("account_failed")] public bool AccountFailed { get; init; }

    /// <summary>Statistics over configured intervals.</summary>
    [JsonPropertyName("timed_stats")] public IReadOnlyList<BlockDeviceTimedStats> TimedStats { get; init; } = [];
}

/// <summary>QAPI <c>BlockDeviceTimedStats</c>: latency and queue depth over one interval.</summary>
public sealed record BlockDeviceTimedStats
{
    /// <summary>Interval length in seconds.</summary>
    [JsonPropertyName("interval_length")] public long IntervalLength { get; init; }

    /// <summary>Minimum read latency.</summary>
    [JsonPropertyName("min_rd_latency_ns")] public long MinRdLatencyNs { get; init; }

    /// <summary>Maximum read latency.</summary>
    [JsonPropertyName("max_rd_latency_ns")] public long MaxRdLatencyNs { get; init; }

    /// <summary>Average read latency.</summary>
    [JsonPropertyName("avg_rd_latency_ns")] public long AvgRdLatencyNs { get; init; }

    /// <summary>Minimum write latency.</summary>
    [JsonPropertyName("min_wr_latency_ns")] public long MinWrLatencyNs { get; init; }

    /// <summary>Maximum write latency.</summary>
    [JsonPropertyName("max_wr_latency_ns")] public long MaxWrLatencyNs { get; init; }

    /// <summary>Average write latency.</summary>
    [JsonPropertyName("avg_wr_latency_ns")] public long AvgWrLatencyNs { get; init; }

    /// <summary>Minimum flush latency.</summary>
    [JsonPropertyName("min_flush_latency_ns")] public long MinFlushLatencyNs { get; init; }

    /// <summary>Maximum flush latency.</summary>
    [JsonPropertyName("max_flush_latency_ns")] public long MaxFlushLatencyNs { get; init; }

    /// <summary>Average flush latency.</summary>
    [JsonPropertyName("avg_flush_latency_ns")] public long AvgFlushLatencyNs { get; init; }

    /// <summary>Average read queue depth.</summary>
    [JsonPropertyName("avg_rd_queue_depth")] public double AvgRdQueueDepth { get; init; }

    /// <summary>Average write queue depth.</summary>
    [JsonPropertyName("avg_wr_queue_depth")] public double AvgWrQueueDepth { get; init; }
}
