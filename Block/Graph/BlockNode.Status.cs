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
}
