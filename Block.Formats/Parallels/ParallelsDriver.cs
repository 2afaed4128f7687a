using Block.Drivers;
using Block.Options;

namespace Block.Formats.Parallels;

/// <summary>
/// The <c>parallels</c> format: Parallels (and OpenVZ ploop) disk images in both signatures, read, written, created
/// and checked as qemu-img 7.2 does, the in-use flag included; a backing image may be given at open, as QEMU allows.
/// </summary>
/// <remarks>Register it with <c>registry.AddParallels()</c> (or <c>registry.AddFormats()</c> for every format of this package).</remarks>
public sealed class ParallelsDriver : BlockDriver
{
    /// <inheritdoc />
    public override string Name => "parallels";

    /// <inheritdoc />
    public override BlockDriverKind Kind => BlockDriverKind.Format;

    /// <inheritdoc />
    /// <remarks>By either signature at offset 0 with version 2, as QEMU recognises Parallels images.</remarks>
    public override int Probe(ReadOnlySpan<byte> header, string? filename) => ParallelsHeader.HasSignature(header) ? 100 : 0;

    /// <inheritdoc />
    public override bool CanCreate => true;

    /// <inheritdoc />
    /// <remarks>The image records no backing file name; a backing image comes only from the open options
    /// (<c>backing=</c>), which QEMU's parallels driver accepts too.</remarks>
    public override bool SupportsBacking => true;

    /// <inheritdoc />
    public override IReadOnlyList<CreateOptionDescriptor> CreateOptions => ParallelsImageCreator.Descriptors;

    /// <inheritdoc />
    public override BlockdevOptions ParseOptions(OptionsReader reader, BlockdevOptionsParser parser) =>
        BlockdevOptionsParallels.Parse(reader, parser);

    /// <inheritdoc />
    public override async ValueTask<NodeDriver> OpenAsync(NodeOpenContext context, CancellationToken cancellationToken) =>
        await ParallelsNodeDriver.OpenAsync(context, (BlockdevOptionsParallels)context.Options, cancellationToken).ConfigureAwait(false);

    /// <inheritdoc />
    public override ValueTask CreateAsync(ImageCreateRequest request, CancellationToken cancellationToken) =>
        ParallelsImageCreator.CreateAsync(request, cancellationToken);
}
