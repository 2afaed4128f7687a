using System.Globalization;
using Block.Drivers;
using Block.Graph;
using Block.Io;

namespace Block.Formats.Vpc;

/// <summary>
/// One open fixed VHD: the disk's bytes at the same offsets in the file, then the footer.
/// </summary>
/// <remarks>
/// A footer may state a size larger than the file holds (a truncated image, or a creator whose size rule differs).
/// Reads then see the footer and zeroes past the end of the file, as QEMU reads them; writes that would land on the
/// footer or past it fail instead of destroying it.
/// </remarks>
internal sealed class VpcFixedNodeDriver(BlockNode node, BlockNode file, long length, long footerOffset) : NodeDriver(node)
{
    public override BlockLimits Limits => new() { RequestAlignment = 512 };

    public override long Length => length;

    public override bool? DirtyFlag => false;

    /// <summary>The node's name when its options make it a <c>json:</c> one (<c>force_size_calc</c>); null for the file's.</summary>
    public string? OptionsFilename { get; init; }

    public override string Filename => OptionsFilename ?? base.Filename;

    public override bool HasZeroInit => file.Impl.HasZeroInit;

    public override ValueTask ReadAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        long fileLength = footerOffset + VpcFooter.Size;
        if (offset + buffers.Length <= fileLength)
            return file.ReadAsync(offset, buffers);
        int inFile = (int)Math.Clamp(fileLength - offset, 0, buffers.Length);
        buffers.Slice(inFile, buffers.Length - inFile).Clear();
        return inFile == 0 ? default : file.ReadAsync(offset, buffers.Slice(0, inFile));
    }

    public override ValueTask WriteAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        if (offset + buffers.Length > footerOffset)
        {
            return ValueTask.FromException(new ImageFormatException(string.Create(CultureInfo.InvariantCulture,
                $"Fixed VPC image '{file.Filename}': a write up to offset {offset + buffers.Length} would overwrite the footer at {footerOffset} (the footer states {length} bytes)"),
                Errno.EIO));
        }
        return file.WriteAsync(offset, buffers);
    }

    public override ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length, bool wantZero) =>
        new(new BlockStatus(BlockStatusFlags.Data | BlockStatusFlags.OffsetValid | BlockStatusFlags.Recurse, length, offset, file));
}
