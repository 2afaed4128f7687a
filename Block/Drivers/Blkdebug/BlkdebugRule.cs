namespace Block.Drivers.Blkdebug;

/// <summary>One rule of a blkdebug node, bound to the event that triggers it.</summary>
internal sealed class BlkdebugRule
{
    /// <summary>An inject-error rule.</summary>
    public BlkdebugRule(BlkdebugInjectErrorOptions o)
    {
        State = o.State;
        Inject = o;
        Errno = (Errno)o.Errno;
        // QEMU keeps the sector as a byte offset; -1 (any) stays -1, other negative sectors never match.
        Offset = o.Sector == -1 ? -1 : o.Sector < 0 || o.Sector > long.MaxValue / 512 ? long.MinValue : o.Sector * 512;
    }

    /// <summary>A set-state rule.</summary>
    public BlkdebugRule(BlkdebugSetStateOptions o)
    {
        State = o.State;
        NewState = o.NewState;
    }

    /// <summary>The state the node must be in (0 = any).</summary>
    public long State { get; }

    /// <summary>The inject-error options, or null for a set-state rule.</summary>
    public BlkdebugInjectErrorOptions? Inject { get; }

    /// <summary>The error an inject-error rule fails with.</summary>
    public Errno Errno { get; }

    /// <summary>The byte a request must cover (-1 = any).</summary>
    public long Offset { get; }

    /// <summary>A set-state rule's new state.</summary>
    public long NewState { get; }

    /// <summary>True if a request of <paramref name="ioType"/> over <c>[offset, offset + bytes)</c> is failed by this rule.</summary>
    public bool Covers(BlkdebugIoType ioType, long offset, long bytes) =>
        (Inject!.IoType & ioType) != 0 && (Offset == -1 || (bytes > 0 && Offset >= offset && Offset - offset < bytes));
}
