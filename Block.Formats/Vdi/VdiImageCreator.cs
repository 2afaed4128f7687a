using System.Buffers.Binary;
using System.Globalization;
using Block.Drivers;
using Block.Qapi;

namespace Block.Formats.Vdi;

/// <summary>
/// <c>qemu-img create -f vdi</c>: the options qemu-img 7.2 takes, and the image it lays out, byte for byte apart from
/// the two random UUIDs.
/// </summary>
internal static class VdiImageCreator
{
    /// <summary>The options, in the order qemu-img's "Formatting" line shows them.</summary>
    public static IReadOnlyList<CreateOptionDescriptor> Descriptors { get; } =
    [
        new("size", CreateOptionType.Size, "Virtual disk size"),
        new("static", CreateOptionType.Bool, "VDI static (pre-allocated) image", "off"),
        new("preallocation", CreateOptionType.String, "Preallocation mode (allowed values: off, falloc, full)"),
    ];

    /// <remarks>
    /// The header at 0, the map at 512 (one entry per started MiB, in whole sectors), the data right after it. A static
    /// image maps block i to data block i and its file is grown to hold every block, with the preallocation asked
    /// for; a dynamic image's map is all "unallocated" and its file ends with the map (preallocation then has
    /// nothing to do, as in QEMU).
    /// </remarks>
    public static async ValueTask CreateAsync(ImageCreateRequest request, CancellationToken cancellationToken)
    {
        ulong size = request.Size ?? throw new BlockOptionsException("Image creation needs a size parameter");
        bool isStatic = request.GetBool("static") ?? false;
        var preallocation = request.GetEnum<PreallocMode>("preallocation") ?? PreallocMode.Off;
        if (preallocation == PreallocMode.Metadata)
            throw new BlockOptionsException("Unsupported preallocation mode: metadata");
        ulong diskSize = size + 511 & ~511UL;
        if (size > VdiHeader.MaxDiskSize)
        {
            throw new BlockOptionsException(string.Create(CultureInfo.InvariantCulture,
                $"Unsupported VDI image size (size is 0x{size:x}, max supported is 0x{VdiHeader.MaxDiskSize:x})"));
        }
        uint blocks = (uint)((diskSize + VdiHeader.BlockSize - 1) / VdiHeader.BlockSize);
        int mapBytes = (int)(((long)blocks * 4 + 511) & ~511L);
        var header = new VdiHeader(isStatic ? VdiHeader.TypeStatic : VdiHeader.TypeDynamic, VdiHeader.Size, (uint)(VdiHeader.Size + mapBytes),
            diskSize, blocks, isStatic ? blocks : 0);

        await using var file = await request.CreateAndOpenFileAsync(cancellationToken).ConfigureAwait(false);
        request.Finish("vdi");
        var start = new byte[VdiHeader.Size + mapBytes];
        header.WriteNew(start);
        var map = start.AsSpan(VdiHeader.Size);
        for (uint i = 0; i < blocks; i++)
            BinaryPrimitives.WriteUInt32LittleEndian(map[(int)(i * 4)..], isStatic ? i : 0xffff_ffff);
        await file.WriteAsync(0, start).ConfigureAwait(false);
        if (isStatic)
            await file.TruncateAsync(header.DataOffset + (long)blocks * VdiHeader.BlockSize, preallocation, exact: true).ConfigureAwait(false);
        await file.FlushAsync().ConfigureAwait(false);
    }
}
