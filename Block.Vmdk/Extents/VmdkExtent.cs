using Block.Graph;
using Block.Io;
using Block.Qapi;

namespace Block.Vmdk.Extents;

/// <summary>
/// One extent of a VMDK disk: a range of the disk stored in one file, flat or sparse. Offsets given to its methods
/// are relative to the extent's start and lie within it; the disk splits requests at extent boundaries.
/// </summary>
internal abstract class VmdkExtent
{
    protected VmdkExtent(BlockNode file, long diskOffset, long length, string typeName)
    {
        File = file;
        DiskOffset = diskOffset;
        Length = length;
        TypeName = typeName;
    }

    /// <summary>The node holding the extent's bytes.</summary>
    public BlockNode File { get; }

    /// <summary>Where the extent starts on the disk, in bytes.</summary>
    public long DiskOffset { get; }

    /// <summary>The extent's size in bytes.</summary>
    public long Length { get; }

    /// <summary>The type as the descriptor names it (<c>FLAT</c>, <c>SPARSE</c>…), or empty for a monolithic sparse file.</summary>
    public string TypeName { get; }

    /// <summary>The grain size in bytes for sparse extents, null for flat ones.</summary>
    public virtual long? ClusterSize => null;

    /// <summary>True if grains are stored compressed.</summary>
    public virtual bool IsCompressed => false;

    /// <summary>Why the extent cannot be written (a format only read here), or null.</summary>
    public virtual string? ReadOnlyReason => null;

    /// <summary>Reads <paramref name="buffers"/>.Length bytes at <paramref name="offset"/>.</summary>
    public abstract ValueTask ReadAsync(long offset, IoVector buffers);

    /// <summary>Writes <paramref name="buffers"/> at <paramref name="offset"/>.</summary>
    public abstract ValueTask WriteAsync(long offset, IoVector buffers, RequestFlags flags);

    /// <summary>Makes a grain-aligned range read as zeroes without data, or declines with ENOTSUP.</summary>
    public virtual ValueTask WriteZeroesAsync(long offset, long length) =>
        ValueTask.FromException(new BlockException(Errno.ENOTSUP, "write-zeroes not supported by this VMDK extent"));

    /// <summary>The status of a prefix of <c>[offset, offset + length)</c>.</summary>
    public abstract ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length);

    /// <summary>
    /// Checks the extent's metadata (<c>qemu-img check</c>): throws for the first grain that points past the end of
    /// its file.
    /// </summary>
    public virtual ValueTask CheckAsync() => default;

    /// <summary>Writes what must reach the file when the disk is closed (an end-of-stream marker).</summary>
    public virtual ValueTask CloseAsync() => default;

    /// <summary>The extent as <c>qemu-img info</c> lists it.</summary>
    public ImageInfo GetInfo() => new()
    {
        Filename = File.Filename,
        Format = TypeName,
        VirtualSize = Length,
        ClusterSize = ClusterSize,
        Compressed = IsCompressed ? true : null,
    };
}
