using System.Buffers.Binary;
using System.Globalization;
using Block.Drivers;
using Block.Graph;
using Block.Options;

namespace Block.Formats.Vhdx;

/// <summary>
/// The <c>vhdx</c> format: Hyper-V's and Azure's virtual disks, dynamic and fixed, read, written and created as
/// qemu-img 7.2 does, with the log replayed on a read/write open and BAT updates written through the log.
/// </summary>
/// <remarks>Register it with <c>registry.AddVhdx()</c> (or <c>registry.AddFormats()</c> for every format of this package).</remarks>
public sealed class VhdxDriver : BlockDriver
{
    /// <summary>The file identifier at offset 0.</summary>
    internal static ReadOnlySpan<byte> Identifier => "vhdxfile"u8;

    /// <inheritdoc />
    public override string Name => "vhdx";

    /// <inheritdoc />
    public override BlockDriverKind Kind => BlockDriverKind.Format;

    /// <inheritdoc />
    /// <remarks>By the file identifier <c>vhdxfile</c> at offset 0, as QEMU recognises VHDX images.</remarks>
    public override int Probe(ReadOnlySpan<byte> header, string? filename) => header.StartsWith(Identifier) ? 100 : 0;

    /// <inheritdoc />
    public override bool CanCreate => true;

    /// <inheritdoc />
    public override IReadOnlyList<CreateOptionDescriptor> CreateOptions => VhdxImageCreator.Descriptors;

    /// <inheritdoc />
    public override BlockdevOptions ParseOptions(OptionsReader reader, BlockdevOptionsParser parser) =>
        new BlockdevOptionsGenericFormat(Name) { File = reader.RequiredRef("file", parser) };

    /// <inheritdoc />
    public override async ValueTask<NodeDriver> OpenAsync(NodeOpenContext context, CancellationToken cancellationToken)
    {
        var options = (BlockdevOptionsGenericFormat)context.Options;
        var file = (await context.OpenChildAsync("file", options.File, ChildRole.Storage, cancellationToken).ConfigureAwait(false)).Node;
        var identifier = await VhdxLayout.ReadBoundedAsync(file, 0, 8).ConfigureAwait(false);
        if (!identifier.AsSpan().SequenceEqual(Identifier))
            throw new ImageFormatException($"Invalid VHDX image '{file.Filename}': no file identifier 'vhdxfile' at offset 0");
        var headers = await VhdxHeaderPair.ReadAsync(file).ConfigureAwait(false);
        var log = new VhdxLog(file, headers);
        bool replayed = false;
        var run = headers.Current.LogGuid != Guid.Empty ? await log.FindSequenceAsync().ConfigureAwait(false) : null;
        if (run is not null)
        {
            if (context.Node.ReadOnly)
            {
                throw new BlockException(Errno.EPERM, $"VHDX image file '{file.Filename}' opened read-only, but contains a log that needs to be replayed"
                    + $"\nTo replay the log, run:\nqemu-img check -r all '{file.Filename}'");
            }
            await log.ReplayAsync(run).ConfigureAwait(false);
            replayed = true;
        }
        var layout = await VhdxLayout.ReadAsync(file, headers.Current).ConfigureAwait(false);
        var bat = await ReadBatAsync(file, layout, headers.Current).ConfigureAwait(false);
        return new VhdxNodeDriver(context.Node, file, layout, headers, log, bat) { ReplayedAtOpen = replayed };
    }

    /// <summary>
    /// Reads the BAT's used sectors and refuses entries whose block would overlap the header section, the log, the BAT
    /// or the metadata region: a guest write must never land on metadata.
    /// </summary>
    private static async ValueTask<ulong[]> ReadBatAsync(BlockNode file, VhdxLayout layout, VhdxHeader header)
    {
        long sectors = (layout.BatEntries * 8 + VhdxLog.SectorSize - 1) / VhdxLog.SectorSize;
        // Bounded by the BAT region, which lies in the file (VhdxLayout checked both).
        var bytes = new byte[sectors * VhdxLog.SectorSize];
        if (bytes.Length > 0)
            await file.ReadAsync(layout.BatOffset, bytes).ConfigureAwait(false);
        var bat = new ulong[bytes.Length / 8];
        for (int i = 0; i < bat.Length; i++)
            bat[i] = BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(i * 8));
        (long Offset, long Length)[] metadata =
        [
            (0, VhdxLayout.MiB), ((long)header.LogOffset, header.LogLength), (layout.BatOffset, layout.BatLength), (layout.MetadataOffset, VhdxLayout.MiB),
        ];
        for (long block = 0; block < layout.PayloadBlocks; block++)
        {
            ulong entry = bat[layout.BatIndex(block)];
            if ((entry & 7) != 6)
                continue;
            long start = (long)(entry >> 20 << 20);
            foreach (var (o, l) in metadata)
            {
                if (start < o + l && o < start + layout.BlockSize)
                {
                    throw new ImageFormatException(string.Create(CultureInfo.InvariantCulture,
                        $"Invalid VHDX image '{file.Filename}': BAT entry {layout.BatIndex(block)} puts payload block {block} at 0x{start:x}, over the image's metadata at 0x{o:x}"));
                }
            }
        }
        return bat;
    }

    /// <inheritdoc />
    public override ValueTask CreateAsync(ImageCreateRequest request, CancellationToken cancellationToken) =>
        VhdxImageCreator.CreateAsync(request, cancellationToken);
}
