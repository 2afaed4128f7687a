using System.Text.Json.Nodes;
using Block.Qapi;

namespace Block.Events;

/// <summary>
/// <c>QUORUM_FAILURE</c>: a quorum node could not reach its vote threshold for a read or a write, and the request
/// failed.
/// </summary>
/// <param name="Reference">The quorum's device name if a named backend uses it, else its node name.</param>
/// <param name="SectorNum">The request's first 512-byte sector.</param>
/// <param name="SectorsCount">How many 512-byte sectors it touched.</param>
public sealed record QuorumFailureEvent(string Reference, long SectorNum, long SectorsCount) : BlockEvent
{
    /// <inheritdoc />
    public override string Name => "QUORUM_FAILURE";

    /// <inheritdoc />
    public override JsonObject ToData() => new()
    {
        ["reference"] = Reference,
        ["sector-num"] = SectorNum,
        ["sectors-count"] = SectorsCount,
    };
}

/// <summary>
/// <c>QUORUM_REPORT_BAD</c>: one child of a quorum failed a request (<see cref="Error"/> says how) or returned data
/// that lost the vote (no <see cref="Error"/>).
/// </summary>
/// <param name="Type">The kind of request.</param>
/// <param name="Error">The child's error text, or null for data that lost the vote.</param>
/// <param name="NodeName">The child's node name.</param>
/// <param name="SectorNum">The request's first 512-byte sector (0 for a flush).</param>
/// <param name="SectorsCount">How many 512-byte sectors it touched (0 for a flush).</param>
public sealed record QuorumReportBadEvent(QuorumOpType Type, string? Error, string NodeName, long SectorNum, long SectorsCount) : BlockEvent
{
    /// <inheritdoc />
    public override string Name => "QUORUM_REPORT_BAD";

    /// <inheritdoc />
    public override JsonObject ToData()
    {
        var data = new JsonObject { ["type"] = QapiEnum<QuorumOpType>.ToWire(Type) };
        if (Error != null)
            data["error"] = Error;
        data["node-name"] = NodeName;
        data["sector-num"] = SectorNum;
        data["sectors-count"] = SectorsCount;
        return data;
    }
}
