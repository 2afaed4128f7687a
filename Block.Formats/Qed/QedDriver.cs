using Block.Drivers;
using Block.Options;

namespace Block.Formats.Qed;

/// <summary>
/// The <c>qed</c> format: QEMU Enhanced Disk images, with backing files, read, written, created, resized, checked and
/// repaired as qemu-img 7.2 does, the need-check flag included.
/// </summary>
/// <remarks>Register it with <c>registry.AddQed()</c> (or <c>registry.AddFormats()</c> for every format of this package).</remarks>
public sealed class QedDriver : BlockDriver
{
    /// <inheritdoc />
    public override string Name => "qed";

    /// <inheritdoc />
    public override BlockDriverKind Kind => BlockDriverKind.Format;

    /// <inheritdoc />
    /// <remarks>By the magic <c>QED\0</c> at offset 0, as QEMU recognises QED images.</remarks>
    public override int Probe(ReadOnlySpan<byte> header, string? filename) => QedHeader.HasMagic(header) ? 100 : 0;

    /// <inheritdoc />
    public override bool CanCreate => true;

    /// <inheritdoc />
    public override bool SupportsBacking => true;

    /// <inheritdoc />
    public override IReadOnlyList<CreateOptionDescriptor> CreateOptions => QedImageCreator.Descriptors;

    /// <inheritdoc />
    public override BlockdevOptions ParseOptions(OptionsReader reader, BlockdevOptionsParser parser) =>
        BlockdevOptionsGenericCowFormat.Parse(Name, reader, parser);

    /// <inheritdoc />
    public override async ValueTask<NodeDriver> OpenAsync(NodeOpenContext context, CancellationToken cancellationToken) =>
        await QedNodeDriver.OpenAsync(context, (BlockdevOptionsGenericCowFormat)context.Options, cancellationToken).ConfigureAwait(false);

    /// <inheritdoc />
    public override ValueTask CreateAsync(ImageCreateRequest request, CancellationToken cancellationToken) =>
        QedImageCreator.CreateAsync(request, cancellationToken);
}
