using System.Text.Json.Nodes;

namespace Block.Events;

/// <summary>
/// <c>STOP</c>: guest I/O stopped because an error policy (<c>stop</c>, or <c>enospc</c> on ENOSPC) held a failed
/// request; it follows that request's <see cref="BlockIoErrorEvent"/>, once until <see cref="Graph.BlockGraph.Continue"/>.
/// </summary>
public sealed record StopEvent : BlockEvent
{
    /// <inheritdoc />
    public override string Name => "STOP";

    /// <inheritdoc />
    public override JsonObject? ToData() => null;
}

/// <summary><c>RESUME</c>: <see cref="Graph.BlockGraph.Continue"/> (QMP <c>cont</c>) let the held requests retry.</summary>
public sealed record ResumeEvent : BlockEvent
{
    /// <inheritdoc />
    public override string Name => "RESUME";

    /// <inheritdoc />
    public override JsonObject? ToData() => null;
}
