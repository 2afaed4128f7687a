namespace Block.Accounting;

/// <summary>The kinds of request accounting distinguishes.</summary>
public enum BlockAcctType
{
    /// <summary>Reads.</summary>
    Read = 0,
    /// <summary>Writes (including write-zeroes and discard, as QEMU's devices account them).</summary>
    Write = 1,
    /// <summary>Flushes.</summary>
    Flush = 2,
}
