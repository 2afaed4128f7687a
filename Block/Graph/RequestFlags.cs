namespace Block.Graph;

/// <summary>Per-request flags (QEMU's <c>BdrvRequestFlags</c>).</summary>
[Flags]
public enum RequestFlags
{
    /// <summary>None.</summary>
    None = 0,
    /// <summary>Force unit access: the write is on stable storage when the request completes.</summary>
    Fua = 1 << 0,
    /// <summary>A write-zeroes request may free the space (only with <c>discard=unmap</c>).</summary>
    MayUnmap = 1 << 1,
    /// <summary>A write-zeroes request fails with ENOTSUP rather than write zero buffers.</summary>
    NoFallback = 1 << 2,
    /// <summary>The write does not change the content (copy-on-read, backup).</summary>
    WriteUnchanged = 1 << 3,
    /// <summary>The data should be stored compressed (formats that can).</summary>
    Compressed = 1 << 4,
}
