using Block.Graph;
using Block.Options;
using Block.Qapi;

namespace Block.Drivers.File;

/// <summary>
/// The <c>file</c> protocol (and <c>host_device</c>, <c>host_cdrom</c>): a local file or block device, read and written
/// with positional I/O through the node's I/O engine.
/// </summary>
/// <remarks>
/// <c>host_cdrom</c> is QEMU's Linux one: the drive opens with no disc in it, its length is the disc's (asked again
/// on each look, so a changed disc shows its own), requests without a disc fail with ENOMEDIUM, and a guest's eject
/// and lock reach the drive through <see cref="NodeDriver.Eject"/> and <see cref="NodeDriver.LockMedium"/>.
/// </remarks>
public sealed class FileDriver : BlockDriver
{
    /// <summary>Creates the driver under <paramref name="name"/> (<c>file</c>, <c>host_device</c> or <c>host_cdrom</c>).</summary>
    public FileDriver(string name)
    {
        Name = name;
    }

    /// <inheritdoc />
    public override string Name { get; }

    /// <inheritdoc />
    public override BlockDriverKind Kind => BlockDriverKind.Protocol;

    /// <inheritdoc />
    public override IReadOnlyList<string> ProtocolPrefixes => Name == "file" ? ["file"] : [];

    /// <inheritdoc />
    public override bool CanCreate => Name == "file";

    /// <inheritdoc />
    public override IReadOnlyList<CreateOptionDescriptor> CreateOptions { get; } =
    [
        new("size", CreateOptionType.Size, "Virtual disk size"),
        new("preallocation", CreateOptionType.String, "Preallocation mode (allowed values: off, falloc, full)"),
        new("nocow", CreateOptionType.Bool, "Turn off copy-on-write (valid only on btrfs)"),
        new("extent_size_hint", CreateOptionType.Size, "Extent size hint for the image file, 0 to disable"),
    ];

    /// <summary>Removes a <c>file:</c> prefix, as QEMU accepts <c>file:path</c>.</summary>
    public static string StripPrefix(string filename) =>
        filename.StartsWith("file:", StringComparison.Ordinal) ? filename[5..] : filename;

    /// <inheritdoc />
    public override BlockdevOptions OptionsFromFilename(string filename) =>
        new BlockdevOptionsFile { Driver = Name, Filename = StripPrefix(filename) };

    /// <inheritdoc />
    public override BlockdevOptions ParseOptions(OptionsReader reader, BlockdevOptionsParser parser)
    {
        var options = new BlockdevOptionsFile
        {
            Driver = Name,
            Filename = reader.RequiredString("filename"),
            Aio = reader.Enum<BlockdevAioOptions>("aio"),
            Locking = reader.Enum<OnOffAuto>("locking"),
        };
        // Accepted for compatibility with QEMU command lines; Block has no page-cache dropping or batching knobs.
        reader.Skip("aio-max-batch");
        reader.Skip("drop-cache");
        return options;
    }

    /// <inheritdoc />
    public override ValueTask<NodeDriver> OpenAsync(NodeOpenContext context, CancellationToken cancellationToken)
    {
        var options = (BlockdevOptionsFile)context.Options;
        var engine = context.Graph.GetEngine(options.Aio ?? context.Graph.DefaultAio);
        return new ValueTask<NodeDriver>(FileNodeDriver.Open(context.Node, options, engine,
            hostDevice: Name == "host_device", cdrom: Name == "host_cdrom"));
    }

    /// <inheritdoc />
    public override async ValueTask CreateAsync(ImageCreateRequest request, CancellationToken cancellationToken)
    {
        ulong size = request.Size ?? 0;
        var prealloc = request.GetEnum<PreallocMode>("preallocation") ?? PreallocMode.Off;
        bool nocow = request.GetBool("nocow") ?? false;
        ulong? extentSizeHint = request.GetSize("extent_size_hint");
        if (prealloc == PreallocMode.Metadata)
            throw new BlockOptionsException("Unsupported preallocation mode: metadata");
        if (size > (ulong)BlockNode.MaxLength)
            throw new BlockOptionsException("Image size must be less than 8 EiB!");
        if (extentSizeHint > uint.MaxValue)
            throw new BlockOptionsException("Extent size hint is too large");
        await FileNodeDriver.CreateFileAsync(request.Graph, StripPrefix(request.Filename), (long)size, prealloc, nocow,
            extentSizeHint ?? (1 << 20), extentSizeHint.HasValue, cancellationToken).ConfigureAwait(false);
    }
}
