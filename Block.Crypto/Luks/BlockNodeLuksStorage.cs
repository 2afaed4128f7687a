using Block.Graph;

namespace Block.Crypto.Luks;

/// <summary>A LUKS area that is a byte range of a node: the whole file of a raw LUKS image, or a window of one.</summary>
/// <param name="node">The node holding the area (a format driver's <c>file</c> child).</param>
/// <param name="offset">Where the area starts in the node.</param>
/// <param name="length">The area's length; by default up to the node's end.</param>
public sealed class BlockNodeLuksStorage(BlockNode node, long offset = 0, long? length = null) : ILuksStorage
{
    /// <inheritdoc />
    public long Length => length ?? Math.Max(0, node.Length - offset);

    /// <inheritdoc />
    public ValueTask InitializeAsync(long length, CancellationToken cancellationToken) => default;

    /// <inheritdoc />
    public ValueTask ReadAsync(long offset1, Memory<byte> buffer, CancellationToken cancellationToken) =>
        node.ReadAsync(offset + offset1, buffer);

    /// <inheritdoc />
    public ValueTask WriteAsync(long offset1, ReadOnlyMemory<byte> data, CancellationToken cancellationToken) =>
        node.WriteAsync(offset + offset1, data);
}
