using System.Buffers.Binary;
using System.Globalization;
using System.Text.Json.Nodes;
using Block.Drivers;
using Block.Graph;
using Block.Options;
using Block.Qapi;

namespace Block.Formats.Vpc;

/// <summary>
/// The <c>vpc</c> format: Virtual PC / Hyper-V VHD images, dynamic (blocks allocated on first write) and fixed (raw
/// data and a trailing footer), read, written and created as qemu-img 7.2 does, with its size rules by geometry and
/// creator.
/// </summary>
/// <remarks>
/// Register it with <c>registry.AddVpc()</c> (or <c>registry.AddFormats()</c>). A fixed VHD has no footer at offset 0, so
/// probing names it <c>raw</c>, as qemu-img does; open it with <c>-f vpc</c>.
/// </remarks>
public sealed class VpcDriver : BlockDriver
{
    /// <inheritdoc />
    public override string Name => "vpc";

    /// <inheritdoc />
    public override BlockDriverKind Kind => BlockDriverKind.Format;

    /// <inheritdoc />
    /// <remarks>By the footer copy at offset 0, which only dynamic images have.</remarks>
    public override int Probe(ReadOnlySpan<byte> header, string? filename) => VpcFooter.HasCookie(header) ? 100 : 0;

    /// <inheritdoc />
    public override bool CanCreate => true;

    /// <inheritdoc />
    public override IReadOnlyList<CreateOptionDescriptor> CreateOptions => VpcImageCreator.Descriptors;

    /// <inheritdoc />
    public override BlockdevOptions ParseOptions(OptionsReader reader, BlockdevOptionsParser parser) =>
        BlockdevOptionsVpc.Parse(reader, parser);

    /// <inheritdoc />
    public override async ValueTask<NodeDriver> OpenAsync(NodeOpenContext context, CancellationToken cancellationToken)
    {
        var options = (BlockdevOptionsVpc)context.Options;
        var sizeRule = options.ForceSizeCalc switch
        {
            null => VpcSizeRule.ByCreator,
            "chs" => VpcSizeRule.Chs,
            "current_size" => VpcSizeRule.CurrentSize,
            _ => throw new BlockOptionsException($"Invalid size calculation mode: '{options.ForceSizeCalc}'"),
        };
        var file = (await context.OpenChildAsync("file", options.File, ChildRole.Storage, cancellationToken).ConfigureAwait(false)).Node;
        long fileLength = file.Length;
        var footerSector = new byte[VpcFooter.Size];
        await file.ReadAsync(0, footerSector.AsMemory(0, (int)Math.Min(fileLength, VpcFooter.Size))).ConfigureAwait(false);
        bool isFixed = !VpcFooter.HasCookie(footerSector);
        if (isFixed)
        {
            // A fixed disk is raw data with the footer only at the end.
            if (fileLength < VpcFooter.Size)
                throw VpcFooter.Invalid();
            await file.ReadAsync(fileLength - VpcFooter.Size, footerSector).ConfigureAwait(false);
            if (!VpcFooter.HasCookie(footerSector))
                throw VpcFooter.Invalid();
        }
        var footer = VpcFooter.Parse(footerSector);
        long sectors = footer.VirtualSectors(sizeRule);
        if (sectors > VpcFooter.MaxSectors)
            throw VpcFooter.TooLarge(file.Filename);
        string? filename = options.ForceSizeCalc is null ? null : JsonFilename(file, options.ForceSizeCalc);
        if (isFixed)
            return new VpcFixedNodeDriver(context.Node, file, sectors * 512, fileLength - VpcFooter.Size) { OptionsFilename = filename };

        // Bounds QEMU does not check: the dynamic header and the BAT must lie in the file, after the footer copy,
        // so that the BAT's size is bounded by the file's and no block can be allocated over them.
        if (footer.DataOffset < VpcFooter.Size || footer.DataOffset > (ulong)(fileLength - VpcDynamicHeader.Size))
            throw Corrupt($"dynamic header offset 0x{footer.DataOffset:x} lies outside the file ({fileLength} bytes) or inside the footer copy");
        var headerBytes = new byte[VpcDynamicHeader.Size];
        await file.ReadAsync((long)footer.DataOffset, headerBytes).ConfigureAwait(false);
        var header = VpcDynamicHeader.Parse(headerBytes, sectors);
        if (header.TableOffset < VpcFooter.Size || header.TableOffset > (ulong)fileLength || (ulong)header.TableBytes > (ulong)fileLength - header.TableOffset)
            throw Corrupt($"BAT of {header.MaxTableEntries} entries at offset 0x{header.TableOffset:x} ends past the end of the file ({fileLength} bytes)");
        long tableOffset = (long)header.TableOffset;
        long headerAt = (long)footer.DataOffset;
        if (tableOffset < headerAt + VpcDynamicHeader.Size && tableOffset + header.TableBytes > headerAt)
            throw Corrupt($"BAT at offset 0x{tableOffset:x} overlaps the dynamic header at 0x{headerAt:x}");

        var bat = new uint[header.MaxTableEntries];
        if (bat.Length > 0)
        {
            var bytes = new byte[header.TableBytes];
            await file.ReadAsync(tableOffset, bytes).ConfigureAwait(false);
            for (int i = 0; i < bat.Length; i++)
                bat[i] = BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(i * 4));
        }
        long free = Math.Max(tableOffset + header.TableBytes + 511 & ~511L, headerAt + VpcDynamicHeader.Size);
        long blockBytes = header.BitmapBytes + (long)header.BlockSize;
        for (int i = 0; i < bat.Length; i++)
        {
            if (bat[i] == VpcNodeDriver.Unallocated)
                continue;
            long at = (long)bat[i] * 512;
            if (at < VpcFooter.Size || Overlaps(at, blockBytes, headerAt, VpcDynamicHeader.Size) || Overlaps(at, blockBytes, tableOffset, header.TableBytes))
                throw Corrupt($"BAT entry {i} places block {i} at offset 0x{at:x}, over the image's metadata");
            free = Math.Max(free, at + blockBytes);
        }
        if (free > fileLength)
            throw new ImageFormatException("block-vpc: free_data_block_offset points after the end of file. The image has been truncated.");
        return new VpcNodeDriver(context.Node, file, footerSector, header, bat, sectors * 512, free) { OptionsFilename = filename };

        static bool Overlaps(long a, long aLength, long b, long bLength) => a < b + bLength && b < a + aLength;

        ImageFormatException Corrupt(string what) =>
            new(string.Create(CultureInfo.InvariantCulture, $"Invalid VPC image '{file.Filename}': {what}"));
    }

    /// <summary>
    /// The name QEMU gives a vpc node opened with <c>force_size_calc</c>: a <c>json:</c> name that keeps the option
    /// (<c>{"force_size_calc": …, "driver": "vpc", "file": …}</c>), since the file's name alone would not reopen it the same.
    /// </summary>
    private static string JsonFilename(BlockNode file, string mode)
    {
        string name = file.Filename;
        JsonNode fileJson = name.StartsWith("json:", StringComparison.Ordinal) && JsonNode.Parse(name[5..]) is JsonObject o
            ? o
            : new JsonObject { ["driver"] = file.DriverName, ["filename"] = name };
        return "json:" + QemuJson.Compact(new JsonObject { ["force_size_calc"] = mode, ["driver"] = "vpc", ["file"] = fileJson });
    }

    /// <inheritdoc />
    public override ValueTask CreateAsync(ImageCreateRequest request, CancellationToken cancellationToken) =>
        VpcImageCreator.CreateAsync(request, cancellationToken);
}
