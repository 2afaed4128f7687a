namespace Block.Graph;

/// <summary>Allocation status through a backing chain.</summary>
public sealed partial class BlockNode
{
    /// <summary>
    /// The status of a prefix of <c>[offset, offset + bytes)</c> as seen through the backing chain: the first layer
    /// (from this node down) that holds data or zeroes for it decides, and <c>Depth</c> says how many layers were
    /// passed on the way (what <c>qemu-img map</c> reports as <c>depth</c>).
    /// </summary>
    public async ValueTask<(BlockStatus Status, int Depth)> GetBlockStatusAboveAsync(long offset, long bytes)
    {
        var node = this;
        int depth = 0;
        while (true)
        {
            var status = await node.GetBlockStatusAsync(offset, bytes, wantZero: true).ConfigureAwait(false);
            if (status.Bytes == 0 || (status.Flags & (BlockStatusFlags.Data | BlockStatusFlags.Zero)) != 0)
                return (status, depth);
            var backing = node.Backing?.Node;
            if (backing is null)
                return (status, depth);
            bytes = status.Bytes;
            node = backing;
            depth++;
        }
    }

    /// <summary>
    /// Whether a prefix of <c>[offset, offset + bytes)</c> is allocated in this node or in a backing node above
    /// <paramref name="base"/> (excluded; null for the whole chain), and how long that prefix is (QEMU's
    /// <c>bdrv_is_allocated_above</c>): what a commit into <paramref name="base"/> must copy.
    /// </summary>
    /// <remarks>A backing node shorter than the range counts as allocated past its end, as zeroes: reads through it
    /// return zeroes there whatever lies below.</remarks>
    public async ValueTask<(bool Allocated, long Bytes)> IsAllocatedAboveAsync(BlockNode? @base, long offset, long bytes)
    {
        for (var node = this; node != null && !ReferenceEquals(node, @base); node = node.Backing?.Node)
        {
            if (!ReferenceEquals(node, this) && offset >= node.Length)
                return (true, bytes);
            var status = await node.GetBlockStatusAsync(offset, bytes, wantZero: false).ConfigureAwait(false);
            if (status.Bytes == 0)
                return (false, bytes);
            if (status.Has(BlockStatusFlags.Allocated))
                return (true, status.Bytes);
            bytes = Math.Min(bytes, status.Bytes);
        }
        return (false, bytes);
    }
}
