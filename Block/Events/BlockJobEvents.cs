using System.Text.Json.Nodes;
using Block.Qapi;

namespace Block.Events;

/// <summary>
/// <c>BLOCK_JOB_COMPLETED</c>: a job finished, successfully or not (<paramref name="Error"/>); also what a mirror or
/// active commit sends when cancelled after it was ready.
/// </summary>
/// <param name="Type">The job type.</param>
/// <param name="Device">The job id.</param>
/// <param name="Len">The final progress length.</param>
/// <param name="Offset">The final progress.</param>
/// <param name="Speed">The rate limit.</param>
/// <param name="Error">The failure's text (strerror), or null on success.</param>
public sealed record BlockJobCompletedEvent(string Type, string Device, long Len, long Offset, long Speed, string? Error) : BlockEvent
{
    /// <inheritdoc />
    public override string Name => "BLOCK_JOB_COMPLETED";

    /// <inheritdoc />
    public override JsonObject ToData()
    {
        var data = new JsonObject { ["type"] = Type, ["device"] = Device, ["len"] = Len, ["offset"] = Offset, ["speed"] = Speed };
        if (Error != null)
            data["error"] = Error;
        return data;
    }
}

/// <summary><c>BLOCK_JOB_CANCELLED</c>: a job stopped on request before it was done.</summary>
/// <param name="Type">The job type.</param>
/// <param name="Device">The job id.</param>
/// <param name="Len">The progress length when it stopped.</param>
/// <param name="Offset">The progress when it stopped.</param>
/// <param name="Speed">The rate limit.</param>
public sealed record BlockJobCancelledEvent(string Type, string Device, long Len, long Offset, long Speed) : BlockEvent
{
    /// <inheritdoc />
    public override string Name => "BLOCK_JOB_CANCELLED";

    /// <inheritdoc />
    public override JsonObject ToData() =>
        new() { ["type"] = Type, ["device"] = Device, ["len"] = Len, ["offset"] = Offset, ["speed"] = Speed };
}

/// <summary><c>BLOCK_JOB_READY</c>: a job with a ready phase may now be completed.</summary>
/// <param name="Type">The job type.</param>
/// <param name="Device">The job id.</param>
/// <param name="Len">The progress length.</param>
/// <param name="Offset">The progress.</param>
/// <param name="Speed">The rate limit.</param>
public sealed record BlockJobReadyEvent(string Type, string Device, long Len, long Offset, long Speed) : BlockEvent
{
    /// <inheritdoc />
    public override string Name => "BLOCK_JOB_READY";

    /// <inheritdoc />
    public override JsonObject ToData() =>
        new() { ["type"] = Type, ["device"] = Device, ["len"] = Len, ["offset"] = Offset, ["speed"] = Speed };
}

/// <summary><c>BLOCK_JOB_ERROR</c>: a job's read or write failed and its error policy acted.</summary>
/// <param name="Device">The job id.</param>
/// <param name="Operation">Whether a read or a write failed.</param>
/// <param name="Action">What the policy did (a stopped job waits for <c>block-job-resume</c>).</param>
public sealed record BlockJobErrorEvent(string Device, IoOperationType Operation, BlockErrorAction Action) : BlockEvent
{
    /// <inheritdoc />
    public override string Name => "BLOCK_JOB_ERROR";

    /// <inheritdoc />
    public override JsonObject ToData() => new()
    {
        ["device"] = Device,
        ["operation"] = QapiEnum<IoOperationType>.ToWire(Operation),
        ["action"] = QapiEnum<BlockErrorAction>.ToWire(Action),
    };
}
