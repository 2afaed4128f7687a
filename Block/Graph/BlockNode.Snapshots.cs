using Block.Io;
using Block.Qapi;

namespace Block.Graph;

public sealed partial class BlockNode
{
    /// <summary>The node's internal snapshots (QEMU's <c>bdrv_snapshot_list</c>).</summary>
    public IReadOnlyList<SnapshotInfo> Snapshots => Impl.Snapshots;

    /// <summary>Creates an internal snapshot of the node's current state, with the graph drained meanwhile.</summary>
    /// <param name="snapshot">Name, dates, VM state size; an empty id lets the driver choose the next one.</param>
    /// <returns>The snapshot as the image recorded it.</returns>
    public async ValueTask<SnapshotInfo> CreateSnapshotAsync(SnapshotInfo snapshot)
    {
        if (ReadOnly)
            throw new BlockException(Errno.EACCES, "Image is read-only");
        var drained = await Graph.BeginDrainAsync().ConfigureAwait(false);
        await using (drained.ConfigureAwait(false))
            return await Impl.CreateSnapshotAsync(snapshot).ConfigureAwait(false);
    }

    /// <summary>Reverts the node to snapshot <paramref name="idOrName"/> (looked up by id first, then by name).</summary>
    public async ValueTask ApplySnapshotAsync(string idOrName)
    {
        if (ReadOnly)
            throw new BlockException(Errno.EACCES, "Image is read-only");
        long before = Length;
        var drained = await Graph.BeginDrainAsync().ConfigureAwait(false);
        await using (drained.ConfigureAwait(false))
            await Impl.ApplySnapshotAsync(idOrName).ConfigureAwait(false);
        if (Length != before)
        {
            ResizeDirtyBitmaps();
            Graph.OnNodeResized(this);
        }
    }

    /// <summary>Deletes the snapshot with <paramref name="id"/> and/or <paramref name="name"/> (at least one given).</summary>
    public async ValueTask DeleteSnapshotAsync(string? id, string? name)
    {
        if (id is null && name is null)
            throw new ArgumentException("An id or a name is needed");
        if (ReadOnly)
            throw new BlockException(Errno.EACCES, "Image is read-only");
        var drained = await Graph.BeginDrainAsync().ConfigureAwait(false);
        await using (drained.ConfigureAwait(false))
            await Impl.DeleteSnapshotAsync(id, name).ConfigureAwait(false);
    }

    /// <summary>Makes this read-only node show snapshot <paramref name="id"/>/<paramref name="name"/> (<c>qemu-img convert -l</c>).</summary>
    public async ValueTask LoadSnapshotAsync(string? id, string? name)
    {
        if (!ReadOnly)
            throw new BlockException(Errno.EINVAL, "Device is not readonly");
        long before = Length;
        var drained = await Graph.BeginDrainAsync().ConfigureAwait(false);
        await using (drained.ConfigureAwait(false))
            await Impl.LoadSnapshotAsync(id, name).ConfigureAwait(false);
        if (Length != before)
            Graph.OnNodeResized(this);
    }

    /// <summary>Reads saved VM state (the area past the disk that snapshots keep).</summary>
    public ValueTask ReadVmStateAsync(long position, IoVector buffers)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(position);
        return Impl.ReadVmStateAsync(position, buffers);
    }

    /// <summary>Writes VM state for the next snapshot.</summary>
    public ValueTask WriteVmStateAsync(long position, IoVector buffers)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(position);
        if (ReadOnly)
            return ValueTask.FromException(new BlockException(Errno.EACCES, "Image is read-only"));
        return Impl.WriteVmStateAsync(position, buffers);
    }
}
