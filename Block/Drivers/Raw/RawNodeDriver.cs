using Block.Drivers.Blkdebug;
using Block.Graph;
using Block.Io;
using Block.Qapi;

namespace Block.Drivers.Raw;

/// <summary>One open raw image: requests pass to the file child, shifted by the offset and bounded by the size.</summary>
internal sealed class RawNodeDriver : NodeDriver
{
    private const int ProbeSectorSize = 512;
    private readonly BlockNode _file;
    private readonly long _offset;
    private readonly long? _size;
    private readonly bool _probed;
    private readonly DriverRegistry _drivers;

    public RawNodeDriver(BlockNode node, BlockNode file, long offset, long? size, bool probed, DriverRegistry drivers)
        : base(node)
    {
        _file = file;
        _offset = offset;
        _size = size;
        _probed = probed;
        _drivers = drivers;
    }

    // A probed image takes whole sectors, so that the first sector can be checked in one piece before it is written.
    public override BlockLimits Limits => new() { RequestAlignment = _probed ? ProbeSectorSize : 1 };

    // As QEMU's raw: FUA only where the file takes it, so a flush (with its debug events) emulates it here otherwise.
    public override RequestFlags SupportedWriteFlags => RequestFlags.Fua & _file.Impl.SupportedWriteFlags;

    public override RequestFlags SupportedZeroFlags =>
        RequestFlags.MayUnmap | RequestFlags.NoFallback | (RequestFlags.Fua & _file.Impl.SupportedZeroFlags);

    public override bool HasDriverInfo => _file.Impl.HasDriverInfo;

    /// <summary>The file's cluster size: QEMU's raw answers <c>bdrv_get_info</c> with its file's (rbd's object size).</summary>
    public override long? ClusterSize => _file.Impl.ClusterSize;

    public override long Length => _size ?? Math.Max(0, _file.Length - _offset);

    // As QEMU's raw format: a guest's eject and lock reach the host drive under it.
    public override void Eject(bool eject) => _file.Impl.Eject(eject);

    public override void LockMedium(bool locked) => _file.Impl.LockMedium(locked);

    public override ValueTask ReadAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        if (_size is { } size && (offset > size || buffers.Length > size - offset))
            return ValueTask.FromException(new BlockException(Errno.EINVAL, "Read beyond the end of the raw image"));
        if (BlkdebugNodeDriver.OpenCount != 0)
            return ReadReportedAsync(offset + _offset, buffers, flags);
        return _file.ReadAsync(offset + _offset, buffers, flags);
    }

    private async ValueTask ReadReportedAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        await _file.DebugEventAsync(BlkdebugEvent.ReadAio).ConfigureAwait(false);
        await _file.ReadAsync(offset, buffers, flags).ConfigureAwait(false);
    }

    private async ValueTask WriteReportedAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        await _file.DebugEventAsync(BlkdebugEvent.WriteAio).ConfigureAwait(false);
        await _file.WriteAsync(offset, buffers, flags).ConfigureAwait(false);
    }

    public override ValueTask WriteAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        if (_size is { } size && (offset > size || buffers.Length > size - offset))
            return ValueTask.FromException(new BlockException(Errno.ENOSPC, "Write beyond the end of the raw image"));
        if (_probed && offset < ProbeSectorSize && !FirstSectorStaysRaw(offset, buffers))
            return ValueTask.FromException(new BlockException(Errno.EPERM,
                "Write to the first sector refused: the image was probed as raw and the data would make it look like another format"));
        if (BlkdebugNodeDriver.OpenCount != 0)
            return WriteReportedAsync(offset + _offset, buffers, flags);
        return _file.WriteAsync(offset + _offset, buffers, flags);
    }

    public override ValueTask WriteZeroesAsync(long offset, long length, RequestFlags flags)
    {
        if (_size is { } size && (offset > size || length > size - offset))
            return ValueTask.FromException(new BlockException(Errno.ENOSPC, "Write beyond the end of the raw image"));
        return _file.WriteZeroesAsync(offset + _offset, length, flags);
    }

    public override ValueTask DiscardAsync(long offset, long length)
    {
        if (_size is { } size && (offset > size || length > size - offset))
            return ValueTask.FromException(new BlockException(Errno.EINVAL, "Discard beyond the end of the raw image"));
        return _file.DiscardAsync(offset + _offset, length);
    }

    public override ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length, bool wantZero) =>
        new(new BlockStatus(BlockStatusFlags.Raw | BlockStatusFlags.OffsetValid, length, offset + _offset, _file));

    public override ValueTask TruncateAsync(long length, PreallocMode preallocation, bool exact)
    {
        if (_size.HasValue)
            return ValueTask.FromException(new BlockException(Errno.ENOTSUP, "Cannot resize fixed-size raw disks"));
        if (_offset != 0)
            return ValueTask.FromException(new BlockException(Errno.ENOTSUP, "Cannot resize raw disks with an offset"));
        return _file.TruncateAsync(length, preallocation, exact);
    }

    private bool FirstSectorStaysRaw(long offset, IoVector buffers)
    {
        // Aligned to 512 by the limits above, so the write either covers the first sector or starts after it.
        if (offset != 0 || buffers.Length < ProbeSectorSize)
            return true;
        Span<byte> sector = stackalloc byte[ProbeSectorSize];
        buffers.Slice(0, ProbeSectorSize).CopyTo(sector);
        return _drivers.ProbeFormat(sector, null).Name == "raw";
    }
}
