using Block.Graph;
using Block.Io;

namespace Block.Vmdk.Extents;

/// <summary>
/// A flat extent (<c>FLAT</c> or <c>VMFS</c>): the disk's bytes are the file's bytes from a fixed offset on. Reads
/// past the end of a short file return zeroes, as they do in QEMU.
/// </summary>
internal sealed class FlatExtent : VmdkExtent
{
    private readonly long _fileOffset;
    private readonly IVmdkParent _parent;

    public FlatExtent(BlockNode file, long diskOffset, long length, string typeName, long fileOffset, IVmdkParent parent)
        : base(file, diskOffset, length, typeName)
    {
        _fileOffset = fileOffset;
        _parent = parent;
    }

    public override ValueTask ReadAsync(long offset, IoVector buffers) => File.ReadAsync(_fileOffset + offset, buffers);

    public override ValueTask WriteAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        var before = _parent.BeforeFirstWriteAsync();
        if (!before.IsCompletedSuccessfully)
            return WriteAfterAsync(before, offset, buffers, flags);
        before.GetAwaiter().GetResult();
        return File.WriteAsync(_fileOffset + offset, buffers, flags & RequestFlags.Fua);
    }

    private async ValueTask WriteAfterAsync(ValueTask before, long offset, IoVector buffers, RequestFlags flags)
    {
        await before.ConfigureAwait(false);
        await File.WriteAsync(_fileOffset + offset, buffers, flags & RequestFlags.Fua).ConfigureAwait(false);
    }

    /// <remarks>
    /// Like QEMU, the answer comes from the file below: holes and the area past a short file's end read as zeroes
    /// but are still data of this layer (a flat extent has no unallocated state).
    /// </remarks>
    public override async ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length)
    {
        long host = _fileOffset + offset;
        var below = await File.GetBlockStatusAsync(host, length, wantZero: true).ConfigureAwait(false);
        var flags = BlockStatusFlags.Data | BlockStatusFlags.OffsetValid;
        long bytes = length;
        if (below.Bytes == 0)
        {
            flags |= BlockStatusFlags.Zero;
        }
        else
        {
            bytes = Math.Min(length, below.Bytes);
            if (below.Has(BlockStatusFlags.Zero))
                flags |= BlockStatusFlags.Zero;
        }
        return new BlockStatus(flags, bytes, host, File);
    }
}
