using Block.Drivers;
using Block.Graph;
using Block.Options;

namespace Block.Formats.Vdi;

/// <summary>
/// The <c>vdi</c> format: VirtualBox disk images, dynamic (blocks allocated on first write) and static, read, written
/// and created as qemu-img 7.2 does.
/// </summary>
/// <remarks>Register it with <c>registry.AddVdi()</c> (or <c>registry.AddFormats()</c> for every format of this package).</remarks>
public sealed class VdiDriver : BlockDriver
{
    /// <inheritdoc />
    public override string Name => "vdi";

    /// <inheritdoc />
    public override BlockDriverKind Kind => BlockDriverKind.Format;

    /// <inheritdoc />
    /// <remarks>By the signature at offset 64, as QEMU recognises VDI images; the text before it is free.</remarks>
    public override int Probe(ReadOnlySpan<byte> header, string? filename) => VdiHeader.HasSignature(header) ? 100 : 0;

    /// <inheritdoc />
    public override bool CanCreate => true;

    /// <inheritdoc />
    public override IReadOnlyList<CreateOptionDescriptor> CreateOptions => VdiImageCreator.Descriptors;

    /// <inheritdoc />
    public override BlockdevOptions ParseOptions(OptionsReader reader, BlockdevOptionsParser parser) =>
        new BlockdevOptionsGenericFormat(Name) { File = reader.RequiredRef("file", parser) };

    /// <inheritdoc />
    public override async ValueTask<NodeDriver> OpenAsync(NodeOpenContext context, CancellationToken cancellationToken)
    {
        var options = (BlockdevOptionsGenericFormat)context.Options;
        var file = (await context.OpenChildAsync("file", options.File, ChildRole.Storage, cancellationToken).ConfigureAwait(false)).Node;
        var headerSector = new byte[VdiHeader.Size];
        int got = (int)Math.Min(file.Length, VdiHeader.Size);
        await file.ReadAsync(0, headerSector.AsMemory(0, got)).ConfigureAwait(false);
        var header = VdiHeader.Parse(headerSector.AsSpan(0, got), file.Length);

        // The map is bounded by the file's size (checked by Parse), so a hostile header cannot make us allocate more
        // than the image holds.
        int mapBytes = checked((int)header.BlockMapBytes);
        var map = new uint[mapBytes / 4];
        if (mapBytes > 0)
        {
            var bytes = new byte[mapBytes];
            await file.ReadAsync(header.BlockMapOffset, bytes).ConfigureAwait(false);
            for (int i = 0; i < map.Length; i++)
                map[i] = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(i * 4));
        }
        return new VdiNodeDriver(context.Node, file, header, headerSector, map);
    }

    /// <inheritdoc />
    public override ValueTask CreateAsync(ImageCreateRequest request, CancellationToken cancellationToken) =>
        VdiImageCreator.CreateAsync(request, cancellationToken);
}
