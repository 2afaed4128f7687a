using System.Buffers.Binary;
using Block.Drivers;
using Block.Options;

namespace Block.Formats.Bochs;

/// <summary>
/// The <c>bochs</c> format: the "growing" redolog images of the Bochs emulator (versions 1 and 2), read-only as in
/// QEMU 7.2.
/// </summary>
/// <remarks>Register it with <c>registry.AddBochs()</c> (or <c>registry.AddFormats()</c> for every format of this package).</remarks>
public sealed class BochsDriver : BlockDriver
{
    /// <inheritdoc />
    public override string Name => "bochs";

    /// <inheritdoc />
    public override BlockDriverKind Kind => BlockDriverKind.Format;

    /// <inheritdoc />
    /// <remarks>Certain when the magic, type and subtype texts and the version are those QEMU opens.</remarks>
    public override int Probe(ReadOnlySpan<byte> header, string? filename) => BochsHeader.IsBochs(header) ? 100 : 0;

    /// <inheritdoc />
    public override BlockdevOptions ParseOptions(OptionsReader reader, BlockdevOptionsParser parser) =>
        new BlockdevOptionsGenericFormat(Name) { File = reader.RequiredRef("file", parser) };

    /// <inheritdoc />
    public override async ValueTask<NodeDriver> OpenAsync(NodeOpenContext context, CancellationToken cancellationToken)
    {
        var (file, bytes, got) = await ReadOnlyFormat.OpenAsync(context, BochsHeader.Size, cancellationToken).ConfigureAwait(false);
        var header = BochsHeader.Parse(bytes.AsSpan(0, got), file.Length);

        // Bounded by the file (checked by Parse) and by QEMU's limit of 1 Mi entries.
        var raw = new byte[checked((int)header.CatalogEntries * 4)];
        if (raw.Length > 0)
            await file.ReadAsync(header.CatalogOffset, raw).ConfigureAwait(false);
        var catalog = new uint[header.CatalogEntries];
        for (int i = 0; i < catalog.Length; i++)
            catalog[i] = BinaryPrimitives.ReadUInt32LittleEndian(raw.AsSpan(i * 4));
        return new BochsNodeDriver(context.Node, file, header, catalog);
    }
}
