using System.Text;
using Block.Options;

namespace Block.Drivers.Vvfat;

/// <summary>
/// The <c>vvfat</c> protocol driver: a host directory presented as a FAT12, FAT16 or FAT32 disk, from QAPI
/// <c>BlockdevOptionsVVFAT</c> or QEMU's <c>fat:[floppy:][rw:][12|16|32:]DIR</c> file names. FAT12 and FAT16 disks
/// are byte for byte QEMU 7.2's; FAT32 is a real FAT32 volume (QEMU's is not; see <see cref="FatGeometry"/>).
/// </summary>
/// <remarks>
/// <para>
/// Read-only unless <c>rw</c> is on; a writable open without it is refused with QEMU's "Image is read-only", and
/// <c>rw</c> on a read-only open with QEMU's "Unable to set VVFAT to 'rw' when drive is read-only".
/// </para>
/// <para>
/// With <c>rw</c>, writes go to an overlay that reads see first: QEMU's is a temporary qcow image backed by the
/// synthesized disk; ours is a temporary sparse file the length of the disk (delete-on-close, in the temporary
/// directory) with a bitmap of the sectors written (<see cref="VvfatOverlay"/>), because that is all a qcow overlay of
/// a 504 MiB disk does here, with no image metadata to keep and no format driver from another package. After each
/// write the volume is read back through the overlay; when its FAT chains and directory entries agree (no chain out
/// of range, looping or shared, every file's chain as long as its size, no cluster allocated but unused, every name
/// one the host can take) the changes are committed to the host directory: files' bytes and sizes, files created and
/// deleted, files and directories renamed or moved, directories made and removed. Until then nothing is committed,
/// as QEMU waits. After a commit the node serves the guest's layout over the new host state, so further reads and
/// writes go on. Writes to the MBR and boot sector are refused (EPERM), as QEMU refuses them. Where QEMU 7.2's
/// commit is broken (deleting, moving or resizing a file, removing or renaming a directory) we commit what the
/// volume says.
/// </para>
/// <para>
/// It lives in the core package because it needs nothing beyond the BCL and libc's <c>statx</c> (for the status
/// change time QEMU puts in the creation fields, which .NET does not expose), and QEMU builds it in.
/// </para>
/// </remarks>
public sealed class VvfatDriver : BlockDriver
{
    private const string DefaultLabel = "QEMU VVFAT";

    /// <inheritdoc />
    public override string Name => "vvfat";

    /// <inheritdoc />
    public override BlockDriverKind Kind => BlockDriverKind.Protocol;

    /// <inheritdoc />
    public override IReadOnlyList<string> ProtocolPrefixes { get; } = [VvfatFilename.Prefix];

    /// <inheritdoc />
    public override BlockdevOptions OptionsFromFilename(string filename) => VvfatFilename.Parse(filename);

    /// <inheritdoc />
    public override BlockdevOptions ParseOptions(OptionsReader reader, BlockdevOptionsParser parser)
    {
        ArgumentNullException.ThrowIfNull(reader);
        string? filename = reader.String("filename");
        if (filename != null)
            return VvfatFilename.Parse(filename);
        return new BlockdevOptionsVvfat
        {
            Dir = reader.RequiredString("dir"),
            FatType = reader.Int("fat-type"),
            Floppy = reader.Bool("floppy"),
            Label = reader.String("label"),
            Rw = reader.Bool("rw"),
        };
    }

    /// <inheritdoc />
    public override ValueTask<NodeDriver> OpenAsync(NodeOpenContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var options = (BlockdevOptionsVvfat)context.Options;
        byte[] label = Label(options.Label ?? DefaultLabel);
        var geometry = FatGeometry.Create(options.FatType ?? 0, options.Floppy ?? false);
        bool rw = options.Rw == true;
        if (rw && context.Node.ReadOnly)
            throw new BlockException(Errno.EINVAL, "Unable to set VVFAT to 'rw' when drive is read-only");
        if (!rw && !context.Node.ReadOnly)
            throw new BlockException(Errno.EACCES, "Image is read-only");
        cancellationToken.ThrowIfCancellationRequested();
        var volume = VvfatVolume.Build(options.Dir, geometry, label);
        return new ValueTask<NodeDriver>(new VvfatNodeDriver(context.Node, volume, VvfatFilename.JsonName(options), writable: rw));
    }

    /// <summary>The label's 11 bytes, space-padded; QEMU's limit of 11 bytes.</summary>
    private static byte[] Label(string label)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(label);
        if (bytes.Length > 11)
            throw new BlockOptionsException("vvfat label cannot be longer than 11 bytes");
        var padded = new byte[11];
        padded.AsSpan().Fill((byte)' ');
        bytes.CopyTo(padded, 0);
        return padded;
    }
}
