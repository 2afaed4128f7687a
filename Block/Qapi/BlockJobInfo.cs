using System.Text.Json.Serialization;

namespace Block.Qapi;

/// <summary>QAPI <c>BlockJobInfo</c>: one running block job, as <c>query-block-jobs</c> lists it.</summary>
public sealed record BlockJobInfo
{
    /// <summary>The job type (<c>stream</c>, <c>commit</c>, <c>mirror</c>, <c>backup</c>).</summary>
    [JsonPropertyName("type")] public required string Type { get; init; }

    /// <summary>The job's id (originally the device name, hence the member's name).</summary>
    [JsonPropertyName("device")] public required string Device { get; init; }

    /// <summary>The progress value when done (it may move while the job runs).</summary>
    [JsonPropertyName("len")] public long Len { get; init; }

    /// <summary>The progress so far.</summary>
    [JsonPropertyName("offset")] public long Offset { get; init; }

    /// <summary>False when the job is known to be quiescent (sleeping, paused), with no I/O of its own pending.</summary>
    [JsonPropertyName("busy")] public bool Busy { get; init; }

    /// <summary>True when the job is paused or will pause at its next pause point.</summary>
    [JsonPropertyName("paused")] public bool Paused { get; init; }

    /// <summary>The rate limit in bytes per second (0: none).</summary>
    [JsonPropertyName("speed")] public long Speed { get; init; }

    /// <summary>The job's I/O status: an error that stopped it sticks until it resumes.</summary>
    [JsonPropertyName("io-status")] public BlockDeviceIoStatus IoStatus { get; init; }

    /// <summary>True when the job may be completed (<c>block-job-complete</c>).</summary>
    [JsonPropertyName("ready")] public bool Ready { get; init; }
}
