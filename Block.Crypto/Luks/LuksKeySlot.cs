namespace Block.Crypto.Luks;

/// <summary>One of the eight key slots of a LUKS1 header: the master key, split and encrypted under one passphrase.</summary>
/// <param name="Active">True if the slot holds a key (<c>0x00AC71F3</c>), false if disabled (<c>0x0000DEAD</c>).</param>
/// <param name="Iterations">PBKDF2 iterations turning the passphrase into the slot key.</param>
/// <param name="Salt">The PBKDF2 salt (32 bytes).</param>
/// <param name="KeyMaterialOffsetSectors">Where the slot's key material starts, in 512-byte sectors from the start of the LUKS area.</param>
/// <param name="Stripes">How many stripes the anti-forensic splitter made of the master key (4000).</param>
public sealed record LuksKeySlot(bool Active, uint Iterations, ReadOnlyMemory<byte> Salt, uint KeyMaterialOffsetSectors, uint Stripes)
{
    /// <summary>The on-disk value of an active slot.</summary>
    public const uint ActiveMarker = 0x00AC71F3;

    /// <summary>The on-disk value of a disabled slot.</summary>
    public const uint DisabledMarker = 0x0000DEAD;

    /// <summary>The key material's offset in bytes from the start of the LUKS area.</summary>
    public long KeyMaterialOffset => KeyMaterialOffsetSectors * 512L;
}
