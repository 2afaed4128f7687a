using Block.Drivers;
using Block.Qapi;

namespace Block.Formats.Vpc;

/// <summary>
/// <c>qemu-img create -f vpc</c>: the options qemu-img 7.2 takes, and the image it lays out, byte for byte apart from
/// the timestamp, the random UUID and the footer checksum over them.
/// </summary>
internal static class VpcImageCreator
{
    /// <summary>The options, in the order qemu-img's "Formatting" line shows them.</summary>
    public static IReadOnlyList<CreateOptionDescriptor> Descriptors { get; } =
    [
        new("size", CreateOptionType.Size, "Virtual disk size"),
        new("subformat", CreateOptionType.String, "Type of virtual hard disk format. Supported formats are {dynamic (default) | fixed} "),
        new("force_size", CreateOptionType.Bool, "Force disk size calculation to use the actual size specified, rather than using the nearest CHS-based calculation"),
        new("preallocation", CreateOptionType.String, "Preallocation mode (allowed values: off, falloc, full)"),
    ];

    /// <remarks>
    /// <para>Without <c>force_size</c> the size grows to the smallest C·H·S geometry that holds it (64 MiB becomes
    /// 67,125,248 bytes), so that Virtual PC, which sizes disks by geometry, sees every byte; from 127.5 GiB on the
    /// geometry is the maximum one and the size is kept. <c>force_size=on</c> keeps the size, writes the maximum
    /// geometry and the creator <c>qem2</c>, which tells readers to size the disk by the footer.</para>
    /// <para>Dynamic: footer copy at 0, dynamic header at 512, the BAT (all unallocated) at 1536 in whole sectors,
    /// the footer after it. Fixed: the data area, a hole, then the footer. <c>preallocation</c> is checked but, as in
    /// qemu-img 7.2, changes nothing.</para>
    /// </remarks>
    public static async ValueTask CreateAsync(ImageCreateRequest request, CancellationToken cancellationToken)
    {
        ulong size = request.Size ?? throw new BlockOptionsException("Image creation needs a size parameter");
        string subformat = request.GetString("subformat") ?? "dynamic";
        bool forceSize = request.GetBool("force_size") ?? false;
        var preallocation = request.GetEnum<PreallocMode>("preallocation") ?? PreallocMode.Off;
        if (subformat is not ("dynamic" or "fixed"))
            throw new BlockOptionsException($"Parameter 'subformat' does not accept value '{subformat}'");
        if (preallocation == PreallocMode.Metadata)
            throw new BlockOptionsException("Unsupported preallocation mode: metadata");
        ulong requestedSectors = size / 512 + (size % 512 == 0 ? 0UL : 1UL);
        if (requestedSectors > VpcFooter.MaxSectors)
            throw TooLarge();
        long sectors = (long)requestedSectors;
        VpcGeometry geometry;
        if (forceSize)
        {
            geometry = VpcGeometry.Max;
        }
        else
        {
            geometry = VpcGeometry.AtLeast(sectors);
            if (!geometry.IsMax)
                sectors = geometry.Sectors;
        }
        bool isFixed = subformat == "fixed";
        const long dynamicHeaderAt = VpcFooter.Size, tableAt = dynamicHeaderAt + VpcDynamicHeader.Size;
        var footer = new VpcFooter(isFixed ? ulong.MaxValue : dynamicHeaderAt, forceSize ? VpcFooter.CreatorQemuForceSize : VpcFooter.CreatorQemu,
            (ulong)sectors * 512, geometry, isFixed ? VpcFooter.TypeFixed : VpcFooter.TypeDynamic);

        await using var file = await request.CreateAndOpenFileAsync(cancellationToken).ConfigureAwait(false);
        request.Finish("vpc");
        var footerBytes = new byte[VpcFooter.Size];
        footer.WriteNew(footerBytes);
        if (isFixed)
        {
            long dataBytes = sectors * 512;
            await file.TruncateAsync(dataBytes + VpcFooter.Size, PreallocMode.Off, exact: true).ConfigureAwait(false);
            await file.WriteAsync(dataBytes, footerBytes).ConfigureAwait(false);
        }
        else
        {
            uint entries = (uint)((sectors + (VpcDynamicHeader.DefaultBlockSize / 512) - 1) / (VpcDynamicHeader.DefaultBlockSize / 512));
            var header = new VpcDynamicHeader(tableAt, entries, VpcDynamicHeader.DefaultBlockSize);
            int tableBytes = (int)((entries * 4L + 511) & ~511L);
            var start = new byte[tableAt + tableBytes + VpcFooter.Size];
            footerBytes.CopyTo(start, 0);
            header.WriteNew(start.AsSpan((int)dynamicHeaderAt));
            start.AsSpan((int)tableAt, tableBytes).Fill(0xff);
            footerBytes.CopyTo(start, tableAt + tableBytes);
            await file.WriteAsync(0, start).ConfigureAwait(false);
        }
        await file.FlushAsync().ConfigureAwait(false);
    }

    private static BlockOptionsException TooLarge() => new("The image size is too large for file format 'vpc'");
}
