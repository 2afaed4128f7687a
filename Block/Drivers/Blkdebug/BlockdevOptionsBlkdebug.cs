using Block.Options;

namespace Block.Drivers.Blkdebug;

/// <summary>QAPI <c>BlockdevOptionsBlkdebug</c>: a filter that imposes request limits and injects errors.</summary>
public sealed record BlockdevOptionsBlkdebug : BlockdevOptions
{
    /// <summary>Creates options for the <c>blkdebug</c> driver.</summary>
    [System.Diagnostics.CodeAnalysis.SetsRequiredMembers]
    public BlockdevOptionsBlkdebug()
    {
        Driver = "blkdebug";
        Image = BlockdevRef.ToNode(string.Empty);
    }

    /// <summary>The filtered image.</summary>
    public required BlockdevRef Image { get; init; }

    /// <summary>
    /// The image as a protocol file name, from QEMU's <c>blkdebug:CONFIG:IMAGE</c> syntax; when set it stands for
    /// <see cref="Image"/>.
    /// </summary>
    public string? ImageFilename { get; init; }

    /// <summary>A rules file in QEMU's format (<c>[inject-error]</c> and <c>[set-state]</c> sections), read at open.</summary>
    public string? Config { get; init; }

    /// <summary>Required request alignment (a power of two), forcing read-modify-write above it.</summary>
    public long? Align { get; init; }

    /// <summary>Largest read/write (QEMU 4.0).</summary>
    public long? MaxTransfer { get; init; }

    /// <summary>Write-zeroes alignment (QEMU 4.0).</summary>
    public long? OptWriteZero { get; init; }

    /// <summary>Largest write-zeroes (QEMU 4.0).</summary>
    public long? MaxWriteZero { get; init; }

    /// <summary>Discard alignment (QEMU 4.0).</summary>
    public long? OptDiscard { get; init; }

    /// <summary>Largest discard (QEMU 4.0).</summary>
    public long? MaxDiscard { get; init; }

    /// <summary>Error injection rules.</summary>
    public IReadOnlyList<BlkdebugInjectErrorOptions> InjectError { get; init; } = [];

    /// <summary>State change rules.</summary>
    public IReadOnlyList<BlkdebugSetStateOptions> SetState { get; init; } = [];

    /// <inheritdoc />
    public override IEnumerable<KeyValuePair<string, BlockdevRef>> ChildReferences =>
        ImageFilename is null ? [new("image", Image)] : [];
}

/// <summary>QAPI <c>BlkdebugInjectErrorOptions</c>: one error injection rule.</summary>
/// <remarks>
/// When <see cref="Event"/> fires in state <see cref="State"/> (0 = any), the rule becomes active: the next request
/// through the blkdebug node of a kind in <see cref="IoType"/> that covers <see cref="Sector"/> fails with
/// <see cref="Errno"/>. It stays active until another event activates other rules, or, with <see cref="Once"/>, until
/// it has failed one request.
/// </remarks>
public sealed record BlkdebugInjectErrorOptions
{
    /// <summary>The trigger event's wire name (<see cref="BlkdebugEventNames"/>).</summary>
    public required string Event { get; init; }

    /// <summary>The state the node must be in for the event to activate the rule (0 = any).</summary>
    public long State { get; init; }

    /// <summary>The kinds of request the rule fails.</summary>
    public BlkdebugIoType IoType { get; init; } = BlkdebugIoType.Default;

    /// <summary>The errno to fail with (default EIO).</summary>
    public int Errno { get; init; } = 5;

    /// <summary>Only requests touching this 512-byte sector fail (-1 = any).</summary>
    public long Sector { get; init; } = -1;

    /// <summary>Fire only once.</summary>
    public bool Once { get; init; }

    /// <summary>Fail synchronously; otherwise the request fails after yielding once, as in QEMU.</summary>
    public bool Immediately { get; init; }
}

/// <summary>QAPI <c>BlkdebugSetStateOptions</c>: when an event fires in a state, the node moves to another.</summary>
public sealed record BlkdebugSetStateOptions
{
    /// <summary>The trigger event's wire name.</summary>
    public required string Event { get; init; }

    /// <summary>The state the node must be in (0 = any).</summary>
    public long State { get; init; }

    /// <summary>The state the node moves to once every rule of the event has been looked at.</summary>
    public long NewState { get; init; }
}
