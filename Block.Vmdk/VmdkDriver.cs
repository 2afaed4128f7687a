using Block.Drivers;
using Block.Graph;
using Block.Options;
using Block.Vmdk.Create;
using Block.Vmdk.Descriptor;
using Block.Vmdk.Format;

namespace Block.Vmdk;

/// <summary>
/// The <c>vmdk</c> format: VMware disks of every subformat QEMU knows — monolithicSparse, monolithicFlat,
/// twoGbMaxExtentSparse/Flat and streamOptimized read and written, vmfs read and written, vmfsSparse and seSparse
/// read — with CID-linked parent chains.
/// </summary>
public sealed class VmdkDriver : BlockDriver
{
    /// <summary>Bytes of the first sector read to tell the kinds of VMDK files apart.</summary>
    private const int ProbeBytes = 2048;

    /// <inheritdoc />
    public override string Name => "vmdk";

    /// <inheritdoc />
    public override BlockDriverKind Kind => BlockDriverKind.Format;

    /// <inheritdoc />
    /// <remarks>Sparse files by their magic ("KDMV", "COWD"); descriptor files by a first non-comment line
    /// <c>version=1</c>, <c>2</c> or <c>3</c>, as QEMU recognises them.</remarks>
    public override int Probe(ReadOnlySpan<byte> header, string? filename) =>
        SparseExtentHeader.HasMagic(header) || CowdHeader.HasMagic(header) || VmdkDescriptor.LooksLikeDescriptor(header) ? 100 : 0;

    /// <inheritdoc />
    public override bool CanCreate => true;

    /// <inheritdoc />
    public override IReadOnlyList<CreateOptionDescriptor> CreateOptions => VmdkCreateOptions.Descriptors;

    /// <inheritdoc />
    public override BlockdevOptions ParseOptions(OptionsReader reader, BlockdevOptionsParser parser)
    {
        bool noBacking = reader.Source.TryGetPropertyValue("backing", out var b) && b is null;
        var backing = reader.Ref("backing", parser);
        if (backing is { Reference: "" })
        {
            backing = null;
            noBacking = true;
        }
        return new BlockdevOptionsVmdk
        {
            File = reader.RequiredRef("file", parser),
            Backing = backing,
            NoBacking = noBacking,
        };
    }

    /// <inheritdoc />
    public override async ValueTask<NodeDriver> OpenAsync(NodeOpenContext context, CancellationToken cancellationToken)
    {
        var options = (BlockdevOptionsVmdk)context.Options;
        var fileChild = await context.OpenChildAsync("file", options.File, ChildRole.Storage, cancellationToken).ConfigureAwait(false);
        var file = fileChild.Node;
        var opener = new VmdkOpener(context, file);
        var opened = await opener.OpenAsync(cancellationToken).ConfigureAwait(false);
        var driver = new VmdkNodeDriver(context.Node, file, opened.Extents, opened.Descriptor, opened.Store, opened.CreateType);
        opener.Parent.Target = driver;

        if (options.Backing is { } reference)
        {
            await context.OpenChildAsync("backing", reference, ChildRole.Cow | ChildRole.Data, cancellationToken).ConfigureAwait(false);
        }
        else if (!options.NoBacking && opened.Descriptor.ParentFileNameHint is { } hint)
        {
            await context.OpenReferencedImageAsync("backing", hint, "vmdk", ChildRole.Cow | ChildRole.Data, readOnly: true, cancellationToken)
                .ConfigureAwait(false);
        }
        return driver;
    }

    /// <inheritdoc />
    public override ValueTask CreateAsync(ImageCreateRequest request, CancellationToken cancellationToken) =>
        VmdkImageCreator.CreateAsync(request, cancellationToken);
}
