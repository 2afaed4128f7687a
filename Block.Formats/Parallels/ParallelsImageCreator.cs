using Block.Drivers;
using Block.Qapi;

namespace Block.Formats.Parallels;

/// <summary>
/// <c>qemu-img create -f parallels</c>: the options qemu-img 7.2 takes, and the image it lays out, byte for byte.
/// </summary>
internal static class ParallelsImageCreator
{
    /// <summary>The options, in the order qemu-img's "Formatting" line shows them.</summary>
    public static IReadOnlyList<CreateOptionDescriptor> Descriptors { get; } =
    [
        new("size", CreateOptionType.Size, "Virtual disk size"),
        new("cluster_size", CreateOptionType.Size, "Parallels image cluster size", "1048576"),
        new("preallocation", CreateOptionType.String, "Preallocation mode (allowed values: off, falloc, full)"),
    ];

    /// <remarks>
    /// <para>The header, then the BAT of one zeroed entry per started cluster, padded with zeroes to a whole number of
    /// clusters; the data area starts there, empty. Sizes are rounded up to whole sectors first, as qemu-img rounds
    /// them, and the BAT's end is computed in 32 bits as QEMU computes it, so even the images QEMU makes but cannot
    /// open (over 2<sup>30</sup> entries) come out the same.</para>
    /// <para><c>preallocation</c> is the file's option in QEMU: it preallocates the file QEMU then truncates to nothing
    /// before formatting it, so it changes no byte; it is checked and otherwise ignored, as there.</para>
    /// </remarks>
    public static async ValueTask CreateAsync(ImageCreateRequest request, CancellationToken cancellationToken)
    {
        ulong requested = request.Size ?? throw new BlockOptionsException("Image creation needs a size parameter");
        ulong clusterOption = request.GetSize("cluster_size") ?? ParallelsHeader.DefaultClusterSize;
        var preallocation = request.GetEnum<PreallocMode>("preallocation") ?? PreallocMode.Off;
        if (preallocation == PreallocMode.Metadata)
            throw new BlockOptionsException("Unsupported preallocation mode: metadata");

        // QEMU creates the file before it checks the sizes: a refused size leaves an empty file, here too.
        await using var file = await request.CreateAndOpenFileAsync(cancellationToken).ConfigureAwait(false);
        request.Finish("parallels");
        ulong size = RoundUpToSector(requested), clusterSize = RoundUpToSector(clusterOption);
        const ulong MaxImageFactor = 1UL << 32;
        if (clusterSize >= long.MaxValue / MaxImageFactor)
            throw new BlockOptionsException("Cluster size is too large");
        if (size >= MaxImageFactor * clusterSize)
            throw new BlockException(Errno.E2BIG, "Image size is too large for this cluster size");

        uint entries = (uint)((size + clusterSize - 1) / clusterSize);
        uint batEnd = unchecked((uint)ParallelsHeader.BatEndOf(entries));
        uint batClusters = (uint)((batEnd + clusterSize - 1) / clusterSize);
        uint dataOffsetSectors = (uint)(batClusters * clusterSize >> 9);

        var sector = new byte[512];
        ParallelsHeader.WriteNew(sector, (long)size, (uint)(clusterSize >> 9), entries, dataOffsetSectors);
        await file.WriteAsync(0, sector).ConfigureAwait(false);
        if (dataOffsetSectors > 1)
            await file.WriteZeroesAsync(512, ((long)dataOffsetSectors - 1) * 512).ConfigureAwait(false);
        await file.FlushAsync().ConfigureAwait(false);
    }

    private static ulong RoundUpToSector(ulong bytes) => bytes > ulong.MaxValue - 511 ? ulong.MaxValue & ~511UL : (bytes + 511) & ~511UL;
}
