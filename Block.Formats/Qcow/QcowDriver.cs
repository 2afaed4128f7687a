using Block.Drivers;
using Block.Options;

namespace Block.Formats.Qcow;

/// <summary>
/// The <c>qcow</c> format: QEMU's original copy-on-write images (version 1), read, written and created as qemu-img 7.2
/// does, with backing files, compressed clusters (read, and rewritten on a partial write) and legacy AES encryption
/// (<c>encrypt.key-secret</c>).
/// </summary>
/// <remarks>Register it with <c>registry.AddQcow()</c> (or <c>registry.AddFormats()</c> for every format of this package).</remarks>
public sealed class QcowDriver : BlockDriver
{
    /// <inheritdoc />
    public override string Name => "qcow";

    /// <inheritdoc />
    public override BlockDriverKind Kind => BlockDriverKind.Format;

    /// <inheritdoc />
    /// <remarks>By the magic <c>QFI\xfb</c> and version 1; qcow2 answers for versions 2 and 3.</remarks>
    public override int Probe(ReadOnlySpan<byte> header, string? filename) => QcowHeader.IsQcow1(header) ? 100 : 0;

    /// <inheritdoc />
    public override bool CanCreate => true;

    /// <inheritdoc />
    public override bool SupportsBacking => true;

    /// <inheritdoc />
    public override IReadOnlyList<CreateOptionDescriptor> CreateOptions => QcowImageCreator.Descriptors;

    /// <inheritdoc />
    public override BlockdevOptions ParseOptions(OptionsReader reader, BlockdevOptionsParser parser) => BlockdevOptionsQcow.Parse(reader, parser);

    /// <inheritdoc />
    public override async ValueTask<NodeDriver> OpenAsync(NodeOpenContext context, CancellationToken cancellationToken) =>
        await QcowNodeDriver.OpenAsync(context, (BlockdevOptionsQcow)context.Options, cancellationToken).ConfigureAwait(false);

    /// <inheritdoc />
    public override ValueTask CreateAsync(ImageCreateRequest request, CancellationToken cancellationToken) =>
        QcowImageCreator.CreateAsync(request, cancellationToken);
}
