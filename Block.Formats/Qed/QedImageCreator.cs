using System.Globalization;
using System.Text;
using Block.Drivers;
using Block.Qapi;

namespace Block.Formats.Qed;

/// <summary>
/// <c>qemu-img create -f qed</c>: the options qemu-img 7.2 takes, and the image it lays out, byte for byte.
/// </summary>
internal static class QedImageCreator
{
    /// <summary>The options, in the order qemu-img's "Formatting" line shows them.</summary>
    public static IReadOnlyList<CreateOptionDescriptor> Descriptors { get; } =
    [
        new("size", CreateOptionType.Size, "Virtual disk size"),
        new("backing_file", CreateOptionType.String, "File name of a base image"),
        new("backing_fmt", CreateOptionType.String, "Image format of the base image"),
        new("cluster_size", CreateOptionType.Size, "Cluster size (in bytes)", "65536"),
        new("table_size", CreateOptionType.Size, "L1/L2 table size (in clusters)"),
        new("preallocation", CreateOptionType.String, "Preallocation mode (allowed values: off, falloc, full)"),
    ];

    /// <remarks>
    /// The header cluster (the backing file name right after the 64 header bytes), then the L1 table of
    /// <c>table_size</c> zeroed clusters; nothing else. A raw backing file is recorded by the no-probe feature, as
    /// QEMU records it; other backing formats are not recorded (QEMU probes them on open). Preallocation applies
    /// to the empty file QEMU creates first, so it changes nothing.
    /// </remarks>
    public static async ValueTask CreateAsync(ImageCreateRequest request, CancellationToken cancellationToken)
    {
        // The size is rounded up to whole sectors first, as qemu-img rounds it.
        ulong size = (request.Size ?? throw new BlockOptionsException("Image creation needs a size parameter")) + 511 & ~511UL;
        ulong clusterSize = request.GetSize("cluster_size") ?? QedHeader.DefaultClusterSize;
        ulong tableSize = request.GetSize("table_size") ?? QedHeader.DefaultTableSize;
        string? backingFile = request.GetString("backing_file");
        string? backingFormat = request.GetString("backing_fmt");
        var preallocation = request.GetEnum<PreallocMode>("preallocation") ?? PreallocMode.Off;
        if (preallocation == PreallocMode.Metadata)
            throw new BlockOptionsException("Unsupported preallocation mode: metadata");
        if (!QedHeader.IsValidClusterSize(clusterSize))
        {
            throw new BlockOptionsException(string.Create(CultureInfo.InvariantCulture,
                $"QED cluster size must be within range [{QedHeader.MinClusterSize}, {QedHeader.MaxClusterSize}] and power of 2"));
        }
        if (!QedHeader.IsValidTableSize(tableSize))
            throw new BlockOptionsException(string.Create(CultureInfo.InvariantCulture, $"QED table size must be within range [1, {QedHeader.MaxTableSize}] and power of 2"));
        ulong max = QedHeader.MaxImageSizeFor((uint)clusterSize, (uint)tableSize);
        if (size % 512 != 0 || size > max)
        {
            throw new BlockOptionsException(string.Create(CultureInfo.InvariantCulture,
                $"QED image size must be a non-zero multiple of cluster size and less than {max} bytes"));
        }
        byte[] name = backingFile is null ? [] : Encoding.UTF8.GetBytes(backingFile);
        if (QedHeader.Size + name.Length > (long)clusterSize)
            throw new BlockOptionsException("Backing file name too long");

        ulong features = 0;
        if (backingFile != null)
        {
            features |= QedHeader.FeatureBackingFile;
            if (backingFormat == "raw")
                features |= QedHeader.FeatureBackingFormatNoProbe;
        }
        var header = new QedHeader
        {
            ClusterSize = (uint)clusterSize,
            TableSize = (uint)tableSize,
            HeaderSize = 1,
            Features = features,
            L1TableOffset = clusterSize,
            ImageSize = size,
            BackingFilenameOffset = backingFile is null ? 0u : QedHeader.Size,
            BackingFilenameSize = (uint)name.Length,
        };

        await using var file = await request.CreateAndOpenFileAsync(cancellationToken).ConfigureAwait(false);
        request.Finish("qed");
        var start = new byte[QedHeader.Size + name.Length];
        header.Write(start);
        name.CopyTo(start, QedHeader.Size);
        await file.WriteAsync(0, start).ConfigureAwait(false);
        await file.WriteZeroesAsync((long)clusterSize, (long)(clusterSize * tableSize)).ConfigureAwait(false);
        await file.FlushAsync().ConfigureAwait(false);
    }
}
