using System.Runtime.CompilerServices;
using Block.Drivers;
using Block.Graph;
using Block.Io;
using Block.Qapi;
using Block.Vmdk.Descriptor;
using Block.Vmdk.Extents;
using Block.Vmdk.Info;

namespace Block.Vmdk;

/// <summary>
/// One open VMDK disk: its descriptor, its extents laid end to end, its content id, and its parent. Requests are
/// split at extent boundaries and passed to the extents; what an extent does not hold comes from the parent.
/// </summary>
/// <remarks>
/// The CID (content id) changes on the first write after each open, before the write reaches an extent, so a child
/// made from this disk notices the change: a child whose <c>parentCID</c> no longer matches its parent's CID fails the
/// reads that need the parent with EINVAL, as QEMU's do.
/// </remarks>
internal sealed class VmdkNodeDriver : NodeDriver, IVmdkParent
{
    private readonly BlockNode _file;
    private readonly VmdkExtent[] _extents;
    private readonly VmdkExtent? _single;
    private readonly long _length;
    private readonly DescriptorStore _store;
    private readonly string _createType;
    private readonly uint _parentCid;
    private readonly SemaphoreSlim _cidLock = new(1, 1);
    private VmdkDescriptor _descriptor;
    private uint _cid;
    private int _cidUpdated;

    public VmdkNodeDriver(BlockNode node, BlockNode file, IReadOnlyList<VmdkExtent> extents, VmdkDescriptor descriptor,
        DescriptorStore store, string createType)
        : base(node)
    {
        _file = file;
        _extents = [.. extents];
        _single = _extents.Length == 1 ? _extents[0] : null;
        _length = _extents.Sum(e => e.Length);
        _descriptor = descriptor;
        _store = store;
        _createType = createType;
        _cid = descriptor.Cid;
        _parentCid = descriptor.ParentCid;
    }

    /// <summary>A place a descriptor is kept: the descriptor file (offset 0) or a sparse file's embedded area.</summary>
    /// <param name="Offset">Where the text starts.</param>
    /// <param name="Capacity">The bytes reserved for it (text and NUL padding).</param>
    internal sealed record DescriptorStore(long Offset, long Capacity);

    /// <summary>The disk's current content id.</summary>
    public uint Cid => Volatile.Read(ref _cid);

    /// <summary>The content id of the parent this disk was made from.</summary>
    public uint ParentCid => _parentCid;

    /// <summary>The descriptor as it is now.</summary>
    public VmdkDescriptor Descriptor => _descriptor;

    internal IReadOnlyList<VmdkExtent> Extents => _extents;

    public override BlockLimits Limits => new()
    {
        RequestAlignment = 512,
        WriteZeroesAlignment = (int)Math.Min(1 << 30, _extents.Max(e => e.ClusterSize ?? 512)),
    };

    public override RequestFlags SupportedWriteFlags => RequestFlags.Compressed;

    public override long Length => _length;

    public override long? ClusterSize
    {
        get
        {
            long? size = _extents[0].ClusterSize;
            foreach (var e in _extents)
            {
                if (e.ClusterSize != size)
                    return null;
            }
            return size;
        }
    }

    public override bool NeedsCompressedWrites => _extents.Any(e => e.IsCompressed);

    public override string? BackingFileName => _descriptor.ParentFileNameHint;

    public override string? BackingFileFormat => _descriptor.ParentFileNameHint is null ? null : "vmdk";

    public override long? AllocatedSize
    {
        get
        {
            long total = 0;
            bool any = false;
            foreach (var node in FileNodes())
            {
                if (node.AllocatedSize is { } size)
                {
                    total += size;
                    any = true;
                }
            }
            return any ? total : null;
        }
    }

    public override ImageInfoSpecific? SpecificInfo => new ImageInfoSpecificVmdk
    {
        CreateType = _createType,
        Cid = Cid,
        ParentCid = _parentCid,
        Extents = [.. _extents.Select(e => e.GetInfo())],
    };

    public bool HasBacking => Node.Backing != null;

    // ---- I/O --------------------------------------------------------------------------------------------------

    public override ValueTask ReadAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        if (_single != null)
            return _single.ReadAsync(offset, buffers);
        int i = FindExtent(offset);
        var extent = _extents[i];
        long relative = offset - extent.DiskOffset;
        if (relative + buffers.Length <= extent.Length)
            return extent.ReadAsync(relative, buffers);
        return ReadSpanningAsync(offset, buffers);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ReadSpanningAsync(long offset, IoVector buffers)
    {
        int done = 0;
        while (done < buffers.Length)
        {
            var extent = _extents[FindExtent(offset + done)];
            long relative = offset + done - extent.DiskOffset;
            int n = (int)Math.Min(buffers.Length - done, extent.Length - relative);
            await extent.ReadAsync(relative, buffers.Slice(done, n)).ConfigureAwait(false);
            done += n;
        }
    }

    public override async ValueTask WriteAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        int done = 0;
        while (done < buffers.Length)
        {
            var extent = _extents[FindExtent(offset + done)];
            long relative = offset + done - extent.DiskOffset;
            int n = (int)Math.Min(buffers.Length - done, extent.Length - relative);
            await extent.WriteAsync(relative, buffers.Slice(done, n), flags).ConfigureAwait(false);
            done += n;
        }
    }

    public override async ValueTask WriteZeroesAsync(long offset, long length, RequestFlags flags)
    {
        long done = 0;
        while (done < length)
        {
            var extent = _extents[FindExtent(offset + done)];
            long relative = offset + done - extent.DiskOffset;
            long n = Math.Min(length - done, extent.Length - relative);
            await extent.WriteZeroesAsync(relative, n).ConfigureAwait(false);
            done += n;
        }
    }

    public override ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length, bool wantZero)
    {
        var extent = _extents[FindExtent(offset)];
        long relative = offset - extent.DiskOffset;
        return extent.GetBlockStatusAsync(relative, Math.Min(length, extent.Length - relative));
    }

    /// <remarks>VMDK disks keep their size, as in QEMU.</remarks>
    public override ValueTask TruncateAsync(long length, PreallocMode preallocation, bool exact) =>
        ValueTask.FromException(new BlockException(Errno.ENOTSUP, "Image format driver does not support resize"));

    public override ValueTask<ImageCheck> CheckAsync(CheckRepair repair) => CheckAsync(repair, null);

    public override async ValueTask<ImageCheck> CheckAsync(CheckRepair repair, TextWriter? messages)
    {
        if (repair != CheckRepair.None)
            throw new BlockException(Errno.ENOTSUP, "This image format does not support checks");
        foreach (var extent in _extents)
        {
            try
            {
                await extent.CheckAsync().ConfigureAwait(false);
            }
            catch (BlockException e) when (e.Errno == Errno.EINVAL)
            {
                // As qemu-img: the finding is printed as it is, and the check fails with the errno's text.
                messages?.WriteLine(e.Message);
                throw new BlockException(e.Errno, ErrnoText.Describe(e.Errno), e);
            }
        }
        return new ImageCheck { Filename = Filename, Format = "vmdk" };
    }

    public override async ValueTask DisposeAsync()
    {
        foreach (var extent in _extents)
            await extent.CloseAsync().ConfigureAwait(false);
        _cidLock.Dispose();
        await base.DisposeAsync().ConfigureAwait(false);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private int FindExtent(long offset)
    {
        var extents = _extents;
        int lo = 0, hi = extents.Length - 1;
        while (lo < hi)
        {
            int mid = (lo + hi + 1) >> 1;
            if (extents[mid].DiskOffset <= offset)
                lo = mid;
            else
                hi = mid - 1;
        }
        return lo;
    }

    private IEnumerable<BlockNode> FileNodes()
    {
        var seen = new HashSet<BlockNode> { _file };
        yield return _file;
        foreach (var e in _extents)
        {
            if (seen.Add(e.File))
                yield return e.File;
        }
    }

    // ---- the parent and the CID -------------------------------------------------------------------------------

    public ValueTask ReadBelowAsync(long diskOffset, IoVector buffers)
    {
        var backing = Node.Backing?.Node;
        if (backing is null)
        {
            buffers.Clear();
            return default;
        }
        if (backing.Impl is VmdkNodeDriver parent && parent.Cid != _parentCid)
        {
            return ValueTask.FromException(new BlockException(Errno.EINVAL,
                $"Parent CID {parent.Cid:x} of '{backing.Filename}' does not match the parentCID {_parentCid:x} of '{Filename}': the parent was modified after this image was made from it"));
        }
        long available = backing.Length - diskOffset;
        if (available >= buffers.Length)
            return backing.ReadAsync(diskOffset, buffers);
        if (available <= 0)
        {
            buffers.Clear();
            return default;
        }
        buffers.Slice((int)available).Clear();
        return backing.ReadAsync(diskOffset, buffers.Slice(0, (int)available));
    }

    public ValueTask BeforeFirstWriteAsync() => Volatile.Read(ref _cidUpdated) != 0 ? default : UpdateCidAsync();

    /// <summary>Gives the disk a new random CID and writes it into the descriptor, once per open.</summary>
    private async ValueTask UpdateCidAsync()
    {
        await _cidLock.WaitAsync().ConfigureAwait(false);
        try
        {
            if (_cidUpdated != 0)
                return;
            var descriptor = _descriptor;
            uint cid = (uint)Random.Shared.NextInt64(0, 1L << 32);
            string text = descriptor.WithCid(cid);
            byte[] bytes = VmdkDescriptor.ToBytes(text);
            long length = (Math.Max(bytes.Length, descriptor.Text.Length) + 511) / 512 * 512;
            if (length > _store.Capacity)
                throw new BlockException(Errno.ENOSPC, $"The VMDK descriptor of '{_file.Filename}' does not fit in its {_store.Capacity} bytes after the CID update");
            var buffer = Node.Graph.Buffers.Rent((int)length);
            try
            {
                var memory = buffer.Memory[..(int)length];
                memory.Span.Clear();
                bytes.CopyTo(memory.Span);
                await _file.WriteAsync(_store.Offset, memory).ConfigureAwait(false);
            }
            finally
            {
                buffer.Return(clear: false);
            }
            _descriptor = VmdkDescriptor.Parse(text);
            Volatile.Write(ref _cid, cid);
            Volatile.Write(ref _cidUpdated, 1);
        }
        finally
        {
            _cidLock.Release();
        }
    }
}
