using System.Buffers.Binary;

namespace Block.Iscsi.Session;

/// <summary>
/// What the driver learns about a LUN at open: its capacity (READ CAPACITY(16)), its provisioning (the LBPME and
/// LBPRZ bits and VPD page B2h) and its block limits (VPD page B0h). Parsed from the commands' raw data-in bytes.
/// </summary>
internal sealed class IscsiLunInfo
{
    /// <summary>Bytes per logical block.</summary>
    public int BlockSize { get; init; }

    /// <summary>Logical blocks on the LUN.</summary>
    public long Blocks { get; init; }

    /// <summary>Logical block provisioning management enabled: GET LBA STATUS answers.</summary>
    public bool Lbpme { get; init; }

    /// <summary>Unmapped blocks read as zeroes.</summary>
    public bool Lbprz { get; init; }

    /// <summary>UNMAP is supported (VPD B2h).</summary>
    public bool Lbpu { get; set; }

    /// <summary>WRITE SAME(16) with the UNMAP bit is supported (VPD B2h).</summary>
    public bool Lbpws { get; set; }

    /// <summary>Largest READ/WRITE in blocks (0: no limit).</summary>
    public uint MaxTransferBlocks { get; set; }

    /// <summary>Preferred READ/WRITE size in blocks (0: none).</summary>
    public uint OptimalTransferBlocks { get; set; }

    /// <summary>Largest UNMAP in blocks (0: none reported).</summary>
    public uint MaxUnmapBlocks { get; set; }

    /// <summary>UNMAP granularity in blocks (0: none reported).</summary>
    public uint OptimalUnmapGranularity { get; set; }

    /// <summary>Largest WRITE SAME in blocks (0: none reported).</summary>
    public ulong MaxWriteSameBlocks { get; set; }

    /// <summary>The LUN is write-protected (MODE SENSE's WP bit).</summary>
    public bool WriteProtected { get; set; }

    /// <summary>The LUN honours DPO and FUA in READ and WRITE (MODE SENSE's DPOFUA bit).</summary>
    public bool DpoFua { get; set; }

    /// <summary>The LUN's length in bytes.</summary>
    public long Length => Blocks * BlockSize;

    /// <summary>Reads READ CAPACITY(16)'s parameter data.</summary>
    /// <exception cref="BlockException">EIO: the data is short or names an impossible geometry.</exception>
    public static IscsiLunInfo FromReadCapacity16(ReadOnlySpan<byte> data)
    {
        if (data.Length < 32)
            throw new BlockException(Errno.EIO, $"iSCSI: READ CAPACITY(16) returned {data.Length} bytes, not 32");
        ulong lastLba = BinaryPrimitives.ReadUInt64BigEndian(data);
        uint blockSize = BinaryPrimitives.ReadUInt32BigEndian(data[8..]);
        if (blockSize < 512 || blockSize > 65536 || (blockSize & (blockSize - 1)) != 0)
            throw new BlockException(Errno.EIO, $"iSCSI: unsupported logical block size {blockSize}");
        if (lastLba >= (ulong)(long.MaxValue / blockSize))
            throw new BlockException(Errno.EIO, $"iSCSI: the LUN's last LBA {lastLba} is out of range");
        return new IscsiLunInfo
        {
            BlockSize = (int)blockSize,
            Blocks = (long)lastLba + 1,
            Lbpme = (data[14] & 0x80) != 0,
            Lbprz = (data[14] & 0x40) != 0,
        };
    }

    /// <summary>True if the Supported VPD Pages page (00h) lists <paramref name="page"/>.</summary>
    public static bool ListsPage(ReadOnlySpan<byte> supportedPages, byte page)
    {
        if (supportedPages.Length < 4)
            return false;
        int length = Math.Min(BinaryPrimitives.ReadUInt16BigEndian(supportedPages[2..]), supportedPages.Length - 4);
        return supportedPages.Slice(4, length).Contains(page);
    }

    /// <summary>Takes the limits of the Block Limits VPD page (B0h); fields past a short page stay unset.</summary>
    public void ApplyBlockLimits(ReadOnlySpan<byte> page)
    {
        if (page.Length >= 12)
            MaxTransferBlocks = BinaryPrimitives.ReadUInt32BigEndian(page[8..]);
        if (page.Length >= 16)
            OptimalTransferBlocks = BinaryPrimitives.ReadUInt32BigEndian(page[12..]);
        if (page.Length >= 24)
            MaxUnmapBlocks = BinaryPrimitives.ReadUInt32BigEndian(page[20..]);
        if (page.Length >= 32)
            OptimalUnmapGranularity = BinaryPrimitives.ReadUInt32BigEndian(page[28..]);
        if (page.Length >= 44)
            MaxWriteSameBlocks = BinaryPrimitives.ReadUInt64BigEndian(page[36..]);
    }

    /// <summary>Takes WP and DPOFUA from the device-specific parameter of MODE SENSE(6)'s header; a short answer sets neither.</summary>
    public void ApplyModeSense6(ReadOnlySpan<byte> data)
    {
        if (data.Length < 4)
            return;
        WriteProtected = (data[2] & 0x80) != 0;
        DpoFua = (data[2] & 0x10) != 0;
    }

    /// <summary>Takes LBPU and LBPWS from the Logical Block Provisioning VPD page (B2h).</summary>
    public void ApplyProvisioning(ReadOnlySpan<byte> page)
    {
        if (page.Length < 6)
            return;
        Lbpu = (page[5] & 0x80) != 0;
        Lbpws = (page[5] & 0x40) != 0;
    }
}
