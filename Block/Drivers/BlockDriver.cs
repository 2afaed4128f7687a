using Block.Graph;
using Block.Options;
using Block.Qapi;

namespace Block.Drivers;

/// <summary>
/// A registered driver: its QAPI name, its kind, how it recognises images, how it reads its options, and how it
/// opens and creates nodes. What one open node does is its <see cref="NodeDriver"/>.
/// </summary>
/// <remarks>
/// This is QEMU's <c>BlockDriver</c> table split in two: the static facts and factories here, the per-node
/// operations in <see cref="NodeDriver"/>. Drivers register explicitly (<c>registry.Add(new FileDriver())</c>),
/// never by reflection, so the library trims and compiles ahead of time.
/// </remarks>
public abstract class BlockDriver
{
    /// <summary>The QAPI <c>BlockdevDriver</c> name.</summary>
    public abstract string Name { get; }

    /// <summary>Protocol, format or filter.</summary>
    public abstract BlockDriverKind Kind { get; }

    /// <summary>
    /// For protocol drivers, the file-name prefixes that select them (<c>nbd</c> for <c>nbd://…</c>); empty for the
    /// plain file protocol and for formats.
    /// </summary>
    public virtual IReadOnlyList<string> ProtocolPrefixes => [];

    /// <summary>
    /// How sure the driver is that <paramref name="header"/> (the first 2 KiB of a file, fewer if the file is
    /// smaller) starts an image of its format: 0 = not, 100 = certain. Raw answers 1 so that it wins only when
    /// nothing else does.
    /// </summary>
    public virtual int Probe(ReadOnlySpan<byte> header, string? filename) => 0;

    /// <summary>Reads the driver's own option members (the common ones are read by the caller).</summary>
    public abstract BlockdevOptions ParseOptions(OptionsReader reader, BlockdevOptionsParser parser);

    /// <summary>Builds the options of a protocol node from a plain file name (protocol drivers only).</summary>
    public virtual BlockdevOptions OptionsFromFilename(string filename) =>
        throw new BlockException(Errno.ENOTSUP, $"Driver '{Name}' does not take file names");

    /// <summary>Opens one node. Format drivers open their children through <paramref name="context"/>.</summary>
    public abstract ValueTask<NodeDriver> OpenAsync(NodeOpenContext context, CancellationToken cancellationToken);

    /// <summary>The options <c>qemu-img create -o</c> takes for this driver, for validation and <c>-o help</c>.</summary>
    public virtual IReadOnlyList<CreateOptionDescriptor> CreateOptions => [];

    /// <summary>
    /// Whether images of this format can have a backing file that the format's options open as <c>backing</c>
    /// (QEMU's <c>supports_backing</c>); such drivers take <c>"backing": null</c> to open without it.
    /// </summary>
    public virtual bool SupportsBacking => false;

    /// <summary>True if <see cref="CreateAsync"/> is implemented.</summary>
    public virtual bool CanCreate => false;

    /// <summary>Creates a new image (<c>qemu-img create</c>).</summary>
    public virtual ValueTask CreateAsync(ImageCreateRequest request, CancellationToken cancellationToken) =>
        throw new BlockException(Errno.ENOTSUP, $"Driver '{Name}' does not support image creation");

    /// <summary>
    /// The options <c>qemu-img amend -o</c> may change in an image of this format (QEMU's <c>amend_opts</c>), in the
    /// order <c>-o help</c> lists them; empty if the format cannot amend (<see cref="NodeDriver.AmendAsync"/>). Options
    /// of <see cref="CreateOptions"/> that are not here exist only for image creation.
    /// </summary>
    public virtual IReadOnlyList<CreateOptionDescriptor> AmendOptions => [];

    /// <summary>True if <see cref="MeasureAsync"/> is implemented.</summary>
    public virtual bool CanMeasure => false;

    /// <summary>
    /// How large an image of this format created with <paramref name="options"/> would be (<c>qemu-img measure</c>,
    /// QEMU's <c>bdrv_measure</c>): for a disk of the <c>size</c> option, or holding the contents of
    /// <paramref name="input"/> (what <c>qemu-img convert</c> would copy: its allocated data through its backing chain).
    /// </summary>
    /// <param name="options">The <c>-o</c> options (format and protocol ones) and the size; its file name is unused.</param>
    /// <param name="input">The image to measure for, or null to measure an empty disk of <c>size</c> bytes.</param>
    /// <param name="cancellationToken">Cancels the scan of <paramref name="input"/>.</param>
    /// <exception cref="BlockOptionsException">An option value the format refuses, with QEMU's message.</exception>
    public virtual ValueTask<BlockMeasureInfo> MeasureAsync(ImageCreateRequest options, BlockNode? input, CancellationToken cancellationToken) =>
        throw new BlockException(Errno.ENOTSUP, $"Block driver '{Name}' does not support size measurement");
}
