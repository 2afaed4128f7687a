using Block.Options;

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
}
