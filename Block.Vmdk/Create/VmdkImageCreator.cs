using System.Globalization;
using System.Text;
using Block.Drivers;
using Block.Graph;
using Block.Vmdk.Descriptor;

namespace Block.Vmdk.Create;

/// <summary>
/// Creates VMDK images as <c>qemu-img create -f vmdk</c> 7.2 lays them out, byte for byte apart from the random CID:
/// the same descriptor text, extent files, header fields and metadata placement.
/// </summary>
internal static class VmdkImageCreator
{
    /// <summary>The largest extent of the twoGbMaxExtent subformats, in bytes.</summary>
    private const long TwoGb = 2L << 30;

    public static async ValueTask CreateAsync(ImageCreateRequest request, CancellationToken cancellationToken)
    {
        var options = VmdkCreateOptions.Read(request);
        uint parentCid = VmdkDescriptor.NoParentCid;
        long? size = options.Size;
        if (options.BackingFile is { } backing)
        {
            var (backingSize, cid) = await ReadParentAsync(request, backing, cancellationToken).ConfigureAwait(false);
            parentCid = cid;
            size ??= backingSize;
        }
        long sectors = ((size ?? throw new BlockOptionsException("Image creation needs a size parameter")) + 511) / 512;

        string filename = request.Filename;
        string directory = Path.GetDirectoryName(filename) ?? string.Empty;
        string baseName = Path.GetFileName(filename);
        int dot = baseName.LastIndexOf('.');
        string prefix = dot > 0 ? baseName[..dot] : baseName;
        string extension = dot > 0 ? baseName[dot..] : string.Empty;

        var extentLines = new StringBuilder();
        var template = new DescriptorTemplate(options, parentCid, sectors);
        switch (options.Subformat)
        {
            case VmdkCreateType.MonolithicSparse:
            case VmdkCreateType.StreamOptimized:
            {
                extentLines.Append(CultureInfo.InvariantCulture, $"RW {sectors} SPARSE \"{baseName}\"\n");
                byte[] text = VmdkDescriptor.ToBytes(VmdkDescriptor.ToLatin1(template.Build(extentLines.ToString())));
                await CreateSparseFileAsync(request, sectors, options, text, cancellationToken).ConfigureAwait(false);
                request.Finish("vmdk");
                return;
            }
            case VmdkCreateType.MonolithicFlat:
            {
                if (sectors > 0)
                {
                    string name = $"{prefix}-flat{extension}";
                    await CreateFlatFileAsync(request, Path.Combine(directory, name), sectors * 512, cancellationToken).ConfigureAwait(false);
                    extentLines.Append(CultureInfo.InvariantCulture, $"RW {sectors} FLAT \"{name}\" 0\n");
                }
                break;
            }
            default:
            {
                bool flat = options.Subformat == VmdkCreateType.TwoGbMaxExtentFlat;
                long remaining = sectors;
                for (int i = 1; remaining > 0; i++)
                {
                    long extentSectors = Math.Min(remaining, TwoGb / 512);
                    string name = string.Create(CultureInfo.InvariantCulture, $"{prefix}-{(flat ? 'f' : 's')}{i:D3}{extension}");
                    string path = Path.Combine(directory, name);
                    if (flat)
                    {
                        await CreateFlatFileAsync(request, path, extentSectors * 512, cancellationToken).ConfigureAwait(false);
                        extentLines.Append(CultureInfo.InvariantCulture, $"RW {extentSectors} FLAT \"{name}\" 0\n");
                    }
                    else
                    {
                        await CreateSparseFileAsync(request.ForDriver(path), extentSectors, options, ReadOnlyMemory<byte>.Empty, cancellationToken).ConfigureAwait(false);
                        extentLines.Append(CultureInfo.InvariantCulture, $"RW {extentSectors} SPARSE \"{name}\"\n");
                    }
                    remaining -= extentSectors;
                }
                break;
            }
        }
        byte[] descriptor = VmdkDescriptor.ToBytes(VmdkDescriptor.ToLatin1(template.Build(extentLines.ToString())));
        await using var file = await request.CreateAndOpenFileAsync(cancellationToken).ConfigureAwait(false);
        await file.WriteAsync(0, descriptor).ConfigureAwait(false);
        await file.TruncateAsync(descriptor.Length, Qapi.PreallocMode.Off, exact: true).ConfigureAwait(false);
        await file.FlushAsync().ConfigureAwait(false);
        request.Finish("vmdk");
    }

    /// <summary>Opens the parent image (a VMDK) for its size and CID, as QEMU does when it records <c>parentCID</c>.</summary>
    private static async ValueTask<(long Size, uint Cid)> ReadParentAsync(ImageCreateRequest request, string backing, CancellationToken cancellationToken)
    {
        string dir = Path.GetDirectoryName(request.Filename) ?? string.Empty;
        string path = Path.IsPathRooted(backing) || backing.Contains(':', StringComparison.Ordinal) || dir.Length == 0 ? backing : Path.Combine(dir, backing);
        await using var parent = await request.Graph.OpenImageAsync(path, new ImageOpenOptions { Format = "vmdk", ReadOnly = true, ForceShare = true },
            cancellationToken).ConfigureAwait(false);
        var root = parent.Root!;
        uint cid = root.Impl is VmdkNodeDriver vmdk ? vmdk.Cid : VmdkDescriptor.NoParentCid;
        return (root.Length, cid);
    }

    private static async ValueTask CreateSparseFileAsync(ImageCreateRequest fileRequest, long sectors, VmdkCreateOptions options,
        ReadOnlyMemory<byte> descriptor, CancellationToken cancellationToken)
    {
        var layout = SparseExtentLayout.For(sectors, options.ZeroedGrain, options.Subformat == VmdkCreateType.StreamOptimized);
        await using var file = await fileRequest.CreateAndOpenFileAsync(cancellationToken).ConfigureAwait(false);
        await layout.WriteAsync(file, descriptor).ConfigureAwait(false);
        await file.FlushAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// A flat extent: a file of the extent's size, sparse, with its first 4 KiB written as QEMU's file creation
    /// leaves it (so maps of the two tools' images agree).
    /// </summary>
    private static async ValueTask CreateFlatFileAsync(ImageCreateRequest request, string path, long bytes, CancellationToken cancellationToken)
    {
        await using var file = await request.ForDriver(path).CreateAndOpenFileAsync(cancellationToken).ConfigureAwait(false);
        await file.TruncateAsync(bytes, Qapi.PreallocMode.Off, exact: true).ConfigureAwait(false);
        int first = (int)Math.Min(bytes, 4096);
        await file.WriteAsync(0, new byte[first]).ConfigureAwait(false);
        await file.FlushAsync().ConfigureAwait(false);
    }

    /// <summary>QEMU's descriptor template.</summary>
    private sealed class DescriptorTemplate(VmdkCreateOptions options, uint parentCid, long sectors)
    {
        private readonly uint _cid = (uint)Random.Shared.NextInt64(0, 1L << 32);

        public string Build(string extentLines)
        {
            int heads = options.AdapterType == "ide" ? 16 : 255;
            long cylinders = sectors / (heads * 63L);
            string hint = options.BackingFile is { } b ? $"parentFileNameHint=\"{b}\"" : string.Empty;
            return string.Create(CultureInfo.InvariantCulture,
                $"# Disk DescriptorFile\nversion=1\nCID={_cid:x}\nparentCID={parentCid:x}\ncreateType=\"{options.Subformat}\"\n{hint}\n" +
                $"# Extent description\n{extentLines}\n# The Disk Data Base\n#DDB\n\n" +
                $"ddb.virtualHWVersion = \"{options.HardwareVersion}\"\nddb.geometry.cylinders = \"{cylinders}\"\n" +
                $"ddb.geometry.heads = \"{heads}\"\nddb.geometry.sectors = \"63\"\nddb.adapterType = \"{options.AdapterType}\"\n" +
                $"ddb.toolsVersion = \"{options.ToolsVersion}\"\n");
        }
    }
}
