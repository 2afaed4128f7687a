namespace Block.Drivers.Blkdebug;

/// <summary>QAPI <c>BlkdebugIOType</c> (QEMU 4.1): the kinds of request an inject-error rule fails.</summary>
[Flags]
public enum BlkdebugIoType
{
    /// <summary>No request.</summary>
    None = 0,
    /// <summary>Reads.</summary>
    Read = 1,
    /// <summary>Writes.</summary>
    Write = 2,
    /// <summary>Write-zeroes requests.</summary>
    WriteZeroes = 4,
    /// <summary>Discards.</summary>
    Discard = 8,
    /// <summary>Flushes.</summary>
    Flush = 16,
    /// <summary>Block-status queries.</summary>
    BlockStatus = 32,
    /// <summary>QEMU's default: every kind but block-status.</summary>
    Default = Read | Write | WriteZeroes | Discard | Flush,
}
