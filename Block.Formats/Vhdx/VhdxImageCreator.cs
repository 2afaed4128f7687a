using System.Buffers.Binary;
using System.Numerics;
using Block.Drivers;
using Block.Qapi;

namespace Block.Formats.Vhdx;

/// <summary>
/// <c>qemu-img create -f vhdx</c>: the options qemu-img 7.2 takes, and the image it lays out, byte for byte apart from
/// the random GUIDs and sequence number, the checksums over them, and the creator string.
/// </summary>
internal static class VhdxImageCreator
{
    /// <summary>The creator string after the file identifier (QEMU writes its own version there).</summary>
    public const string Creator = "Block";

    /// <summary>The options, in the order qemu-img's "Formatting" line shows them.</summary>
    public static IReadOnlyList<CreateOptionDescriptor> Descriptors { get; } =
    [
        new("size", CreateOptionType.Size, "Virtual disk size; max of 64TB."),
        new("log_size", CreateOptionType.Size, "Log size; min 1MB.", "1048576"),
        new("block_size", CreateOptionType.Size, "Block Size; min 1MB, max 256MB. 0 means auto-calculate based on image size.", "0"),
        new("subformat", CreateOptionType.String, "VHDX format type, can be either 'dynamic' or 'fixed'. Default is 'dynamic'."),
        new("block_state_zero", CreateOptionType.Bool, "Force use of payload blocks of type 'ZERO'. Non-standard, but default.  Do not set to 'off' when using 'qemu-img convert' with subformat=dynamic."),
        new("preallocation", CreateOptionType.String, "Preallocation mode (allowed values: off, falloc, full)"),
    ];

    /// <remarks>
    /// The header section in the first MiB, the log at 1 MiB, the BAT after it (rounded to whole MiB), the metadata
    /// region after that (1 MiB), and the data 4 MiB further on, where the file ends for a dynamic image. A fixed image's
    /// file holds the whole disk from there; its BAT says ZERO for every block unless <c>block_state_zero=off</c>.
    /// </remarks>
    public static async ValueTask CreateAsync(ImageCreateRequest request, CancellationToken cancellationToken)
    {
        ulong size = request.Size ?? throw new BlockOptionsException("Image creation needs a size parameter");
        ulong logSize = request.GetSize("log_size") ?? VhdxLayout.MiB;
        ulong blockSize = request.GetSize("block_size") ?? 0;
        string subformat = request.GetString("subformat") ?? "dynamic";
        bool blockStateZero = request.GetBool("block_state_zero") ?? true;
        var preallocation = request.GetEnum<PreallocMode>("preallocation") ?? PreallocMode.Off;
        if (preallocation == PreallocMode.Metadata)
            throw new BlockOptionsException("Unsupported preallocation mode: metadata");
        if (subformat is not ("dynamic" or "fixed"))
            throw new BlockOptionsException($"Parameter 'subformat' does not accept value '{subformat}'");
        bool isFixed = subformat == "fixed";
        if (size > VhdxLayout.MaxVirtualSize)
            throw new BlockOptionsException("Image size too large; max of 64TB");
        if (logSize > uint.MaxValue)
            throw new BlockOptionsException("Log size must be smaller than 4 GB");
        logSize = (logSize + VhdxLayout.MiB - 1) & ~(ulong)(VhdxLayout.MiB - 1);
        if (logSize == 0 || logSize > uint.MaxValue)
            throw new BlockOptionsException(logSize == 0 ? "Log size must be a multiple of 1 MB" : "Log size must be smaller than 4 GB");
        if (blockSize == 0)
        {
            blockSize = size > 32UL << 40 ? 64UL << 20 : size > 100UL << 30 ? 32UL << 20 : size > 1UL << 30 ? 16UL << 20 : 8UL << 20;
        }
        blockSize = Math.Min((blockSize + VhdxLayout.MiB - 1) & ~(ulong)(VhdxLayout.MiB - 1), 256 * VhdxLayout.MiB);
        if (!ulong.IsPow2(blockSize))
            throw new BlockOptionsException("Block size must be a power of two");
        ulong diskSize = size + 511 & ~511UL;

        long batOffset = VhdxLayout.MiB + (long)logSize;
        var layout = new VhdxLayout(batOffset, 0, 0, (int)blockSize, isFixed, (long)diskSize, 512, 512);
        // QEMU counts the sector bitmap entries as (blocks - 1) / chunk ratio in 32 bits: for a disk of no blocks that
        // wraps to block size - 1 entries, a BAT of 8 bytes per byte of a block (64 MiB for 8 MiB blocks, hence a 71 MiB
        // file), which we lay out as it does; with 256 MiB blocks its 2 GiB BAT fails to be written.
        long batEntries = layout.PayloadBlocks == 0 ? (long)(uint.MaxValue >> BitOperations.Log2((ulong)layout.ChunkRatio)) : layout.BatEntries;
        long batLength = (batEntries * 8 + VhdxLayout.MiB - 1) & ~(VhdxLayout.MiB - 1);
        if (batLength > int.MaxValue)
            throw new BlockException(Errno.EIO, "Failed to write the BAT: Input/output error");
        long metadataOffset = batOffset + batLength;
        long dataOffset = batOffset + batLength + 5 * VhdxLayout.MiB;

        await using var file = await request.CreateAndOpenFileAsync(cancellationToken).ConfigureAwait(false);
        request.Finish("vhdx");

        // The header section: identifier, two headers, two region tables.
        var head = new byte[VhdxLayout.RegionTable2Offset + VhdxLayout.RegionTableSize];
        "vhdxfile"u8.CopyTo(head);
        for (int i = 0; i < Creator.Length; i++)
            BinaryPrimitives.WriteUInt16LittleEndian(head.AsSpan(8 + 2 * i), Creator[i]);
        ulong sequence = (uint)Random.Shared.Next() | (ulong)(uint)Random.Shared.Next(2) << 31;
        var header = new VhdxHeader(sequence, Guid.NewGuid(), Guid.NewGuid(), Guid.Empty, 0, 1, (uint)logSize, VhdxLayout.MiB);
        header.WriteTo(head.AsSpan((int)VhdxHeader.Offset1, VhdxHeader.Size));
        (header with { SequenceNumber = sequence + 1 }).WriteTo(head.AsSpan((int)VhdxHeader.Offset2, VhdxHeader.Size));
        var table = head.AsSpan((int)VhdxLayout.RegionTable1Offset, VhdxLayout.RegionTableSize);
        BinaryPrimitives.WriteUInt32LittleEndian(table, 0x69676572);
        BinaryPrimitives.WriteUInt32LittleEndian(table[8..], 2);
        WriteRegion(table[16..], VhdxLayout.BatGuid, batOffset, batLength);
        WriteRegion(table[48..], VhdxLayout.MetadataGuid, metadataOffset, VhdxLayout.MiB);
        VhdxChecksum.Store(table, 4);
        table.CopyTo(head.AsSpan((int)VhdxLayout.RegionTable2Offset));
        await file.WriteAsync(0, head).ConfigureAwait(false);

        // The metadata region: the table and five items packed after its first 64 KiB.
        var metadata = new byte[VhdxLayout.MetadataTableSize + 40];
        var m = metadata.AsSpan();
        "metadata"u8.CopyTo(m);
        BinaryPrimitives.WriteUInt16LittleEndian(m[10..], 5);
        const int Items = VhdxLayout.MetadataTableSize;
        WriteItem(m[32..], VhdxLayout.FileParametersGuid, Items, 8, 4);
        WriteItem(m[64..], VhdxLayout.VirtualDiskSizeGuid, Items + 8, 8, 6);
        WriteItem(m[96..], VhdxLayout.Page83Guid, Items + 16, 16, 6);
        WriteItem(m[128..], VhdxLayout.LogicalSectorSizeGuid, Items + 32, 4, 6);
        WriteItem(m[160..], VhdxLayout.PhysicalSectorSizeGuid, Items + 36, 4, 6);
        BinaryPrimitives.WriteUInt32LittleEndian(m[Items..], (uint)blockSize);
        BinaryPrimitives.WriteUInt32LittleEndian(m[(Items + 4)..], isFixed ? 1u : 0u);
        BinaryPrimitives.WriteUInt64LittleEndian(m[(Items + 8)..], diskSize);
        Guid.NewGuid().TryWriteBytes(m.Slice(Items + 16, 16));
        BinaryPrimitives.WriteUInt32LittleEndian(m[(Items + 32)..], 512);
        BinaryPrimitives.WriteUInt32LittleEndian(m[(Items + 36)..], 512);
        await file.WriteAsync(metadataOffset, metadata).ConfigureAwait(false);

        // The BAT: ZERO blocks, or (fixed, block_state_zero=off) blocks present in order from the data offset; the
        // sector bitmap entries between chunks stay 0.
        if (blockStateZero || isFixed)
        {
            var bat = new byte[layout.BatEntries * 8];
            for (long block = 0; block < layout.PayloadBlocks; block++)
            {
                ulong entry = blockStateZero ? 2UL : (ulong)(dataOffset + block * (long)blockSize) | 6;
                BinaryPrimitives.WriteUInt64LittleEndian(bat.AsSpan((int)(layout.BatIndex(block) * 8)), entry);
            }
            if (bat.Length > 0)
                await file.WriteAsync(batOffset, bat).ConfigureAwait(false);
        }
        await file.TruncateAsync(isFixed ? dataOffset + (long)diskSize : dataOffset, PreallocMode.Off, exact: true).ConfigureAwait(false);
        await file.FlushAsync().ConfigureAwait(false);
    }

    private static void WriteRegion(Span<byte> entry, Guid guid, long offset, long length)
    {
        guid.TryWriteBytes(entry);
        BinaryPrimitives.WriteUInt64LittleEndian(entry[16..], (ulong)offset);
        BinaryPrimitives.WriteUInt32LittleEndian(entry[24..], (uint)length);
    }

    private static void WriteItem(Span<byte> entry, Guid guid, int offset, int length, uint flags)
    {
        guid.TryWriteBytes(entry);
        BinaryPrimitives.WriteUInt32LittleEndian(entry[16..], (uint)offset);
        BinaryPrimitives.WriteUInt32LittleEndian(entry[20..], (uint)length);
        BinaryPrimitives.WriteUInt32LittleEndian(entry[24..], flags);
    }
}
