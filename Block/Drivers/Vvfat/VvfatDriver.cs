using System.Text;
using Block.Options;

namespace Block.Drivers.Vvfat;

/// <summary>
/// The <c>vvfat</c> protocol driver: a host directory presented as a FAT12, FAT16 or FAT32 disk, from QAPI
/// <c>BlockdevOptionsVVFAT</c> or QEMU's <c>fat:[floppy:][rw:][12|16|32:]DIR</c> file names. FAT12 and FAT16 disks
/// are byte for byte QEMU 7.2's; FAT32 is a real FAT32 volume (QEMU's is not; see <see cref="FatGeometry"/>).
/// </summary>
/// <remarks>
/// Read-only. <c>rw</c> (QEMU's qcow overlay whose changes are committed back to the directory) is refused at open
/// with a message that says so; a writable open without <c>rw</c> is refused with QEMU's "Image is read-only".
/// It lives in the core package because it needs nothing beyond the BCL and libc's <c>statx</c> (for the status
/// change time QEMU puts in the creation fields, which .NET does not expose), and QEMU builds it in.
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
