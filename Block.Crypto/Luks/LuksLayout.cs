namespace Block.Crypto.Luks;

/// <summary>
/// Where a new LUKS1 volume puts its key material and payload, as cryptsetup and QEMU lay them out: the header in the
/// first 4 KiB, then eight key slot areas each rounded up to 4 KiB, then the payload.
/// </summary>
/// <remarks>
/// For the default aes-256-xts (64-byte key): 64 × 4000 = 256000 bytes of key material = 500 sectors, rounded to 504;
/// slots at sectors 8, 512, 1016 … and the payload at sector 4040 (2068480 bytes). For a 32-byte key the payload starts
/// at sector 2056.
/// </remarks>
public static class LuksLayout
{
    /// <summary>Sectors the header takes before the first slot (4 KiB).</summary>
    public const uint HeaderSectors = 8;

    /// <summary>Key slot areas are whole multiples of this many sectors (4 KiB).</summary>
    public const uint AlignmentSectors = 8;

    /// <summary>Sectors one slot's key material area takes for a master key of <paramref name="keyBytes"/> bytes.</summary>
    public static uint SlotSectors(int keyBytes)
    {
        long sectors = ((long)keyBytes * LuksHeader.Stripes + 511) / 512;
        return (uint)((sectors + AlignmentSectors - 1) / AlignmentSectors * AlignmentSectors);
    }

    /// <summary>The first sector of slot <paramref name="slot"/>'s key material.</summary>
    public static uint SlotOffsetSectors(int keyBytes, int slot) => HeaderSectors + (uint)slot * SlotSectors(keyBytes);

    /// <summary>
    /// The payload offset in sectors: the header and all eight slot areas. For qcow2 this is also the size of the
    /// LUKS area (in bytes, times 512) it allocates.
    /// </summary>
    public static uint PayloadOffsetSectors(int keyBytes) => HeaderSectors + LuksHeader.SlotCount * SlotSectors(keyBytes);
}
