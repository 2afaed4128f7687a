namespace Block.Vmdk.Descriptor;

/// <summary>One extent line of a descriptor: <c>RW 4194304 SPARSE "disk-s001.vmdk"</c> or <c>RW 2048 FLAT "disk-flat.vmdk" 0</c>.</summary>
/// <param name="Sectors">The extent's size in 512-byte sectors.</param>
/// <param name="Type">The extent's kind.</param>
/// <param name="TypeName">The type as written (<c>FLAT</c>, <c>SPARSE</c>…), which <c>qemu-img info</c> shows as the extent's format.</param>
/// <param name="FileName">The extent file's name as written, relative to the descriptor's directory unless absolute.</param>
/// <param name="OffsetSectors">For flat extents, where the disk's data starts in the file, in sectors; 0 otherwise.</param>
public sealed record VmdkExtentLine(long Sectors, VmdkExtentType Type, string TypeName, string FileName, long OffsetSectors);
