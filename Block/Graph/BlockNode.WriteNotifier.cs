namespace Block.Graph;

/// <summary>
/// Something that must see the old content of a range before a request changes it: a backup job's copy-before-write
/// (QEMU 2.8's <c>before_write_notifiers</c> on the source node).
/// </summary>
internal interface IBeforeWriteNotifier
{
    /// <summary>
    /// Runs before a write, write-zeroes or discard of <c>[offset, offset + bytes)</c> reaches the driver, inside the
    /// request (after it registered with the request tracker). A failure fails the request.
    /// </summary>
    ValueTask BeforeWriteAsync(long offset, long bytes);
}

public sealed partial class BlockNode
{
    /// <summary>The node's before-write notifier, read by the request path without a lock.</summary>
    private volatile IBeforeWriteNotifier? _beforeWrite;

    /// <summary>
    /// Installs the node's before-write notifier; call drained, so no request that started without it is still in
    /// flight. One at a time: the seed refuses a second backup of one source before it gets here.
    /// </summary>
    /// <exception cref="InvalidOperationException">The node already has one.</exception>
    internal void AddBeforeWriteNotifier(IBeforeWriteNotifier notifier)
    {
        if (Interlocked.CompareExchange(ref _beforeWrite, notifier, null) != null)
            throw new InvalidOperationException($"Node '{NodeName}' already has a before-write notifier");
    }

    /// <summary>Removes the notifier installed by <see cref="AddBeforeWriteNotifier"/>; call drained.</summary>
    internal void RemoveBeforeWriteNotifier(IBeforeWriteNotifier notifier) =>
        Interlocked.CompareExchange(ref _beforeWrite, null, notifier);

    /// <summary>Runs the notifier, if any, for a request about to change <c>[offset, offset + bytes)</c>.</summary>
    private ValueTask NotifyBeforeWriteAsync(long offset, long bytes) =>
        _beforeWrite is { } notifier ? notifier.BeforeWriteAsync(offset, bytes) : default;
}
