using Block.Drivers;
using Block.Drivers.File;
using Block.Graph;
using Block.Io;
using Block.Options;
using Block.Vmdk.Descriptor;
using Block.Vmdk.Extents;
using Block.Vmdk.Format;

namespace Block.Vmdk;

/// <summary>
/// Opens what a VMDK file stands for: a sparse file with its embedded descriptor, a bare COWD file, or a descriptor
/// file and the extent files it names (resolved against its directory, checked by the graph's reference policy).
/// </summary>
internal sealed class VmdkOpener
{
    /// <summary>Bytes reserved for an embedded descriptor when the header does not say (QEMU's 20 sectors).</summary>
    private const int DefaultEmbeddedDescriptorBytes = 20 * 512;

    private readonly NodeOpenContext _context;
    private readonly BlockNode _file;

    public VmdkOpener(NodeOpenContext context, BlockNode file)
    {
        _context = context;
        _file = file;
    }

    /// <summary>The parent the extents talk to; it forwards to the disk once the disk exists.</summary>
    public ParentLink Parent { get; } = new();

    /// <summary>What was opened.</summary>
    public sealed record Opened(IReadOnlyList<VmdkExtent> Extents, VmdkDescriptor Descriptor, VmdkNodeDriver.DescriptorStore Store, string CreateType);

    public async ValueTask<Opened> OpenAsync(CancellationToken cancellationToken)
    {
        long length = _file.Impl.Length;
        if (length == 0)
            throw new ImageFormatException($"File is too small, not a valid image: '{_file.Filename}' is empty");
        var head = new byte[(int)Math.Min(length, 2048)];
        await _file.ReadAsync(0, head).ConfigureAwait(false);
        bool readOnly = _context.Node.ReadOnly;
        var buffers = _context.Graph.Buffers;

        if (SparseExtentHeader.HasMagic(head))
        {
            var (extent, header) = await SparseExtent.OpenHostedAsync(_file, 0, string.Empty, Parent, buffers, readOnly).ConfigureAwait(false);
            var (descriptor, store) = await ReadEmbeddedDescriptorAsync(header, length).ConfigureAwait(false);
            return new Opened([extent], descriptor, store, descriptor.CreateType);
        }
        if (CowdHeader.HasMagic(head))
        {
            // As in QEMU, an ESX sparse extent is a disk only through the descriptor that names it.
            throw new ImageFormatException($"invalid VMDK image descriptor: '{_file.Filename}' is a COWD extent; open the descriptor that names it");
        }

        var text = new byte[(int)Math.Min(length, VmdkDescriptor.MaxTextBytes)];
        await _file.ReadAsync(0, text).ConfigureAwait(false);
        var parsed = VmdkDescriptor.Parse(text);
        if (!parsed.HasCreateType)
            throw new ImageFormatException($"invalid VMDK image descriptor: '{_file.Filename}' is neither a sparse VMDK file nor a descriptor with a createType");
        if (!VmdkCreateType.IsDescriptorFileType(parsed.CreateType))
            throw new ImageFormatException($"Unsupported image type '{parsed.CreateType}'", Errno.ENOTSUP);
        var extents = await OpenExtentsAsync(parsed, readOnly, cancellationToken).ConfigureAwait(false);
        return new Opened(extents, parsed, new VmdkNodeDriver.DescriptorStore(0, long.MaxValue), parsed.CreateType);
    }

    /// <summary>
    /// Reads the descriptor embedded in a sparse file. QEMU reads it at sector 1 whatever the header says; the header's
    /// descriptor size bounds it when it is sane.
    /// </summary>
    private async ValueTask<(VmdkDescriptor, VmdkNodeDriver.DescriptorStore)> ReadEmbeddedDescriptorAsync(SparseExtentHeader header, long fileLength)
    {
        long capacity = header.DescriptorOffsetSectors == 1 && header.DescriptorSizeSectors is > 0 and <= VmdkDescriptor.MaxTextBytes / 512
            ? (long)header.DescriptorSizeSectors * 512
            : DefaultEmbeddedDescriptorBytes;
        int n = (int)Math.Min(capacity, fileLength - 512);
        var bytes = new byte[Math.Max(0, n)];
        if (n > 0)
            await _file.ReadAsync(512, bytes).ConfigureAwait(false);
        var descriptor = VmdkDescriptor.Parse(bytes);
        if (!descriptor.HasCreateType)
            throw new ImageFormatException($"invalid VMDK image descriptor: the sparse file '{_file.Filename}' embeds no descriptor with a createType at offset 512");
        // A rewritten descriptor (new CID) may use the reserved area but never reach the metadata after it.
        long room = Math.Max(capacity, (descriptor.Text.Length + 512) / 512 * 512);
        ulong firstMetadata = header.OverheadSectors;
        foreach (ulong sector in new[] { header.RedundantGrainDirectorySector, header.GrainDirectorySector })
        {
            if (sector > 1 && sector < firstMetadata)
                firstMetadata = sector;
        }
        if (firstMetadata > 1)
            room = Math.Min(room, (long)Math.Min(firstMetadata - 1, (ulong)VmdkDescriptor.MaxTextBytes / 512) * 512);
        return (descriptor, new VmdkNodeDriver.DescriptorStore(512, room));
    }

    private async ValueTask<List<VmdkExtent>> OpenExtentsAsync(VmdkDescriptor descriptor, bool readOnly, CancellationToken cancellationToken)
    {
        var extents = new List<VmdkExtent>();
        var buffers = _context.Graph.Buffers;
        long diskOffset = 0;
        for (int i = 0; i < descriptor.Extents.Count; i++)
        {
            var line = descriptor.Extents[i];
            if (line.Sectors > (BlockNode.MaxLength - diskOffset) / 512 || line.OffsetSectors > BlockNode.MaxLength / 512)
                throw new ImageFormatException($"VMDK extents of '{_file.Filename}' add up to more than {BlockNode.MaxLength} bytes (extent {i}: {line.Sectors} sectors at sector {line.OffsetSectors})", Errno.EFBIG);
            var node = await OpenExtentFileAsync(i, line.FileName, cancellationToken).ConfigureAwait(false);
            VmdkExtent extent = line.Type switch
            {
                VmdkExtentType.Flat or VmdkExtentType.Vmfs =>
                    new FlatExtent(node, diskOffset, line.Sectors * 512, line.TypeName, line.OffsetSectors * 512, Parent),
                VmdkExtentType.Sparse =>
                    (await SparseExtent.OpenHostedAsync(node, diskOffset, line.TypeName, Parent, buffers, readOnly).ConfigureAwait(false)).Extent,
                VmdkExtentType.VmfsSparse =>
                    await SparseExtent.OpenCowdAsync(node, diskOffset, line.TypeName, Parent, buffers, readOnly).ConfigureAwait(false),
                _ => throw new ImageFormatException(
                    $"seSparse extents are not supported: '{line.FileName}' in '{_file.Filename}' (open it with a tool that reads ESXi space-efficient snapshots)", Errno.ENOTSUP),
            };
            if (extent.Length > BlockNode.MaxLength - diskOffset)
                throw new ImageFormatException($"VMDK extents of '{_file.Filename}' add up to more than {BlockNode.MaxLength} bytes", Errno.EFBIG);
            extents.Add(extent);
            diskOffset += extent.Length;
        }
        if (extents.Count == 0)
            throw new ImageFormatException($"VMDK descriptor '{_file.Filename}' declares no extent (no RW extent line with a size)");
        return extents;
    }

    /// <summary>
    /// Opens an extent file as a protocol node (<c>extents.N</c>), named relative to the descriptor's directory and
    /// allowed by the graph's image reference policy. It uses the descriptor file's I/O engine.
    /// </summary>
    private async ValueTask<BlockNode> OpenExtentFileAsync(int index, string name, CancellationToken cancellationToken)
    {
        string resolved = _context.Node.ResolveReference(name);
        _context.Graph.ReferencePolicy.Check(resolved, _file.Filename);
        BlockdevOptions options = _context.Graph.Drivers.ProtocolFor(resolved).OptionsFromFilename(resolved);
        if (options is BlockdevOptionsFile f && _file.Options is BlockdevOptionsFile parentFile)
            options = f with { Aio = parentFile.Aio, Locking = parentFile.Locking };
        var child = await _context.OpenChildAsync($"extents.{index}", options, ChildRole.Data, cancellationToken).ConfigureAwait(false);
        return child.Node;
    }

    /// <summary>Forwards an extent's questions to the disk, which is made after its extents.</summary>
    internal sealed class ParentLink : IVmdkParent
    {
        public VmdkNodeDriver? Target { get; set; }

        public bool HasBacking => Target!.HasBacking;

        public ValueTask ReadBelowAsync(long diskOffset, IoVector buffers) => Target!.ReadBelowAsync(diskOffset, buffers);

        public ValueTask BeforeFirstWriteAsync() => Target!.BeforeFirstWriteAsync();
    }
}
