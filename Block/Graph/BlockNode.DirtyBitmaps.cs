using System.Numerics;
using Block.Bitmaps;
using Block.Qapi;

namespace Block.Graph;

public sealed partial class BlockNode
{
    private readonly List<DirtyBitmap> _bitmaps = [];

    /// <summary>The attached bitmaps as an array the request path reads without a lock (replaced on every change).</summary>
    private volatile DirtyBitmap[] _bitmapArray = [];

    /// <summary>The node's dirty bitmaps, in the order they were attached.</summary>
    public IReadOnlyList<DirtyBitmap> DirtyBitmaps => _bitmapArray;

    /// <summary>
    /// The bitmaps as QMP's <c>dirty-bitmaps</c> members list them (<c>query-block</c>, <c>query-named-block-nodes</c>):
    /// newest first, as QEMU keeps them (a format's stored bitmaps therefore in reverse order of the image's
    /// directory); null when the node has none, which QEMU shows by leaving the member out.
    /// </summary>
    public IReadOnlyList<BlockDirtyInfo>? QueryDirtyBitmaps()
    {
        var bitmaps = _bitmapArray;
        if (bitmaps.Length == 0)
            return null;
        var info = new BlockDirtyInfo[bitmaps.Length];
        for (int i = 0; i < bitmaps.Length; i++)
            info[i] = bitmaps[bitmaps.Length - 1 - i].GetInfo();
        return info;
    }

    /// <summary>The bitmap named <paramref name="name"/>, or null.</summary>
    public DirtyBitmap? FindDirtyBitmap(string name) => Array.Find(_bitmapArray, b => b.Name == name);

    /// <summary>
    /// The granularity QEMU gives a bitmap created without one: the cluster size clamped to [4 KiB, 64 KiB], 64 KiB
    /// for formats without clusters.
    /// </summary>
    public long DefaultBitmapGranularity => Impl.ClusterSize is { } cs and > 0 ? Math.Clamp(cs, 4096, 65536) : 65536;

    /// <summary>
    /// Attaches a bitmap its driver loaded from the image (persistent bitmaps at open), or one a caller built. From now
    /// on writes to the node mark it while it is <see cref="DirtyBitmap.Enabled"/>.
    /// </summary>
    /// <exception cref="BlockException">EEXIST: the node already has a bitmap of that name.</exception>
    public void AttachDirtyBitmap(DirtyBitmap bitmap)
    {
        ArgumentNullException.ThrowIfNull(bitmap);
        lock (_bitmaps)
        {
            if (bitmap.Name != null && _bitmaps.Any(b => b.Name == bitmap.Name))
                throw new BlockException(Errno.EEXIST, $"Bitmap already exists: {bitmap.Name}");
            _bitmaps.Add(bitmap);
            _bitmapArray = [.. _bitmaps];
        }
    }

    /// <summary>
    /// Creates a bitmap over the node (QMP <c>block-dirty-bitmap-add</c>): empty, recording unless
    /// <paramref name="disabled"/>, and with <paramref name="persistent"/> stored in the image when the node closes.
    /// </summary>
    /// <param name="name">A name no other bitmap of the node has.</param>
    /// <param name="granularity">Bytes per bit; null for <see cref="DefaultBitmapGranularity"/>.</param>
    /// <param name="persistent">Store the bitmap in the image (the format must support it: qcow2 v3).</param>
    /// <param name="disabled">Create it not recording.</param>
    /// <returns>The new bitmap.</returns>
    /// <exception cref="BlockException">QEMU's messages: an empty name, a bad granularity, a format that cannot store the
    /// bitmap (with its reason), an existing name.</exception>
    public async ValueTask<DirtyBitmap> AddDirtyBitmapAsync(string name, long? granularity = null, bool persistent = false, bool disabled = false)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.Length == 0)
            throw new BlockException(Errno.EINVAL, "Bitmap name cannot be empty");
        long g = granularity ?? DefaultBitmapGranularity;
        if (g < DirtyBitmap.MinGranularity || !BitOperations.IsPow2(g))
            throw new BlockException(Errno.EINVAL, "Granularity must be power of 2 and at least 512");
        if (persistent)
            await Impl.CanStoreNewDirtyBitmapAsync(name, g).ConfigureAwait(false);
        var bitmap = new DirtyBitmap(name, Length, g) { Enabled = !disabled, Persistent = persistent };
        AttachDirtyBitmap(bitmap);
        return bitmap;
    }

    /// <summary>
    /// Removes a bitmap (QMP <c>block-dirty-bitmap-remove</c>); a persistent one is removed from the image at once.
    /// Inconsistent bitmaps may be removed (it is the way to get rid of them).
    /// </summary>
    /// <exception cref="BlockException">Not found, busy, read-only, or the image could not be updated.</exception>
    public async ValueTask RemoveDirtyBitmapAsync(string name)
    {
        var bitmap = GetDirtyBitmap(name);
        CheckBitmap(bitmap, allowReadOnly: false, allowInconsistent: true);
        if (bitmap.Persistent)
            await Impl.RemovePersistentDirtyBitmapAsync(name).ConfigureAwait(false);
        DetachDirtyBitmap(bitmap);
    }

    /// <summary>Detaches <paramref name="bitmap"/> without touching the image (anonymous bitmaps of finished jobs).</summary>
    public void DetachDirtyBitmap(DirtyBitmap bitmap)
    {
        lock (_bitmaps)
        {
            _bitmaps.Remove(bitmap);
            _bitmapArray = [.. _bitmaps];
        }
    }

    /// <summary>Clears every bit of a bitmap (QMP <c>block-dirty-bitmap-clear</c>).</summary>
    public void ClearDirtyBitmap(string name)
    {
        var bitmap = GetDirtyBitmap(name);
        CheckBitmap(bitmap, allowReadOnly: false, allowInconsistent: false);
        bitmap.Clear();
    }

    /// <summary>Makes a bitmap record writes (QMP <c>block-dirty-bitmap-enable</c>).</summary>
    public void EnableDirtyBitmap(string name)
    {
        var bitmap = GetDirtyBitmap(name);
        CheckBitmap(bitmap, allowReadOnly: true, allowInconsistent: false);
        bitmap.Enabled = true;
    }

    /// <summary>Stops a bitmap from recording writes (QMP <c>block-dirty-bitmap-disable</c>).</summary>
    public void DisableDirtyBitmap(string name)
    {
        var bitmap = GetDirtyBitmap(name);
        CheckBitmap(bitmap, allowReadOnly: true, allowInconsistent: false);
        bitmap.Enabled = false;
    }

    /// <summary>
    /// ORs the bitmaps <paramref name="sources"/> into the bitmap <paramref name="target"/> (QMP
    /// <c>block-dirty-bitmap-merge</c>). A source may be a bitmap of another node (another image's), read-only or busy,
    /// not inconsistent, and must cover the same length; granularities may differ. Nothing changes unless every source
    /// can be merged.
    /// </summary>
    /// <param name="target">The name of this node's bitmap to merge into.</param>
    /// <param name="sources">Each source's node and bitmap name, looked up in turn after the target is checked.</param>
    public void MergeDirtyBitmaps(string target, IEnumerable<(BlockNode Node, string Name)> sources)
    {
        ArgumentNullException.ThrowIfNull(sources);
        var destination = GetDirtyBitmap(target);
        CheckBitmap(destination, allowReadOnly: false, allowInconsistent: false);
        var merged = new DirtyBitmap(null, destination.Length, destination.Granularity);
        merged.Merge(destination);
        foreach (var (node, name) in sources)
        {
            var source = node.GetDirtyBitmap(name);
            CheckBitmap(source, allowReadOnly: true, allowInconsistent: false, allowBusy: true);
            merged.Merge(source);
        }
        destination.Merge(merged);
    }

    /// <summary>The bitmap named <paramref name="name"/>; throws QEMU's "Dirty bitmap 'x' not found".</summary>
    public DirtyBitmap GetDirtyBitmap(string name) =>
        FindDirtyBitmap(name) ?? throw new BlockException(Errno.ENOENT, $"Dirty bitmap '{name}' not found");

    /// <summary>QEMU's <c>bdrv_dirty_bitmap_check</c>: busy, then read-only, then inconsistent, with its messages.</summary>
    private static void CheckBitmap(DirtyBitmap bitmap, bool allowReadOnly, bool allowInconsistent, bool allowBusy = false)
    {
        if (bitmap.Busy && !allowBusy)
            throw new BlockException(Errno.EBUSY, $"Bitmap '{bitmap.Name}' is currently in use by another operation and cannot be used");
        if (bitmap.ReadOnly && !allowReadOnly)
            throw new BlockException(Errno.EPERM, $"Bitmap '{bitmap.Name}' is readonly and cannot be modified");
        if (bitmap.Inconsistent && !allowInconsistent)
            throw new BlockException(Errno.EPERM,
                $"Bitmap '{bitmap.Name}' is inconsistent and cannot be used\nTry block-dirty-bitmap-remove to delete this bitmap from disk");
    }

    /// <summary>Marks <c>[offset, offset + bytes)</c> in every recording bitmap (after a write, write-zeroes or discard).</summary>
    private void MarkDirtyBitmaps(long offset, long bytes)
    {
        foreach (var bitmap in _bitmapArray)
        {
            if (bitmap.Enabled)
                bitmap.SetDirty(offset, bytes);
        }
    }

    /// <summary>Follows a change of the node's length in every bitmap.</summary>
    private void ResizeDirtyBitmaps()
    {
        long length = Length;
        foreach (var bitmap in _bitmapArray)
            bitmap.Resize(length);
    }
}
