using System.Text.Json.Nodes;
using Block.Qapi;

namespace Block.Events;

/// <summary>
/// An event of the schema (<c>BLOCK_WRITE_THRESHOLD</c>, <c>BLOCK_IO_ERROR</c>…), raised by the graph and delivered
/// to <see cref="Graph.BlockGraph.EventRaised"/> handlers; the QMP adapter forwards them with a timestamp.
/// </summary>
public abstract record BlockEvent
{
    /// <summary>The event's QAPI name.</summary>
    public abstract string Name { get; }

    /// <summary>When the event was raised (host wall clock).</summary>
    public DateTimeOffset Timestamp { get; init; } = DateTimeOffset.UtcNow;

    /// <summary>The event's <c>data</c> member with the schema's wire names, or null for an event without data.</summary>
    public abstract JsonObject? ToData();
}

/// <summary><c>BLOCK_WRITE_THRESHOLD</c>: a write reached beyond a node's write threshold (which is now 0).</summary>
/// <param name="NodeName">The node.</param>
/// <param name="AmountExceeded">How far the write went beyond the threshold.</param>
/// <param name="WriteThreshold">The threshold that was set.</param>
public sealed record BlockWriteThresholdEvent(string NodeName, ulong AmountExceeded, ulong WriteThreshold) : BlockEvent
{
    /// <inheritdoc />
    public override string Name => "BLOCK_WRITE_THRESHOLD";

    /// <inheritdoc />
    public override JsonObject ToData() => new()
    {
        ["node-name"] = NodeName,
        ["amount-exceeded"] = AmountExceeded,
        ["write-threshold"] = WriteThreshold,
    };
}

/// <summary><c>BLOCK_IO_ERROR</c>: a request from a backend failed and an error policy acted on it.</summary>
/// <param name="Device">The backend's name ("" if none).</param>
/// <param name="NodeName">The backend's root node.</param>
/// <param name="Operation">Read or write (flushes count as writes).</param>
/// <param name="Action">What the policy did.</param>
/// <param name="NoSpace">True if the error was ENOSPC (only when the backend reports io-status).</param>
/// <param name="Reason">The error's text, not for parsing.</param>
public sealed record BlockIoErrorEvent(string Device, string? NodeName, IoOperationType Operation, BlockErrorAction Action, bool? NoSpace, string Reason) : BlockEvent
{
    /// <inheritdoc />
    public override string Name => "BLOCK_IO_ERROR";

    /// <inheritdoc />
    public override JsonObject ToData()
    {
        var data = new JsonObject
        {
            ["device"] = Device,
            ["operation"] = QapiEnum<IoOperationType>.ToWire(Operation),
            ["action"] = QapiEnum<BlockErrorAction>.ToWire(Action),
        };
        if (NodeName != null)
            data["node-name"] = NodeName;
        if (NoSpace != null)
            data["nospace"] = NoSpace.Value;
        data["reason"] = Reason;
        return data;
    }
}

/// <summary><c>BLOCK_IMAGE_CORRUPTED</c>: a format driver found its image corrupt.</summary>
/// <param name="Device">The backend's name, or "".</param>
/// <param name="NodeName">The node.</param>
/// <param name="Message">What was found.</param>
/// <param name="Offset">Host offset of the corruption, when known.</param>
/// <param name="Size">Size of the corrupt range, when known.</param>
/// <param name="Fatal">True if the node was marked corrupt and stopped.</param>
public sealed record BlockImageCorruptedEvent(string Device, string? NodeName, string Message, long? Offset, long? Size, bool Fatal) : BlockEvent
{
    /// <inheritdoc />
    public override string Name => "BLOCK_IMAGE_CORRUPTED";

    /// <inheritdoc />
    public override JsonObject ToData()
    {
        var data = new JsonObject { ["device"] = Device };
        if (NodeName != null)
            data["node-name"] = NodeName;
        data["msg"] = Message;
        if (Offset != null)
            data["offset"] = Offset.Value;
        if (Size != null)
            data["size"] = Size.Value;
        data["fatal"] = Fatal;
        return data;
    }
}

/// <summary><c>DEVICE_TRAY_MOVED</c>: a device's tray opened or closed (by a command or by the guest).</summary>
/// <param name="Device">The backend's name ("" for an anonymous backend).</param>
/// <param name="Id">The device's id.</param>
/// <param name="TrayOpen">True if the tray is now open.</param>
public sealed record DeviceTrayMovedEvent(string Device, string Id, bool TrayOpen) : BlockEvent
{
    /// <inheritdoc />
    public override string Name => "DEVICE_TRAY_MOVED";

    /// <inheritdoc />
    public override JsonObject ToData() => new() { ["device"] = Device, ["id"] = Id, ["tray-open"] = TrayOpen };
}
