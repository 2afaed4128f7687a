namespace Block.Crypto.Qapi;

/// <summary>QAPI <c>QCryptoBlockInfoLUKSSlot</c>: one key slot as <c>qemu-img info</c> shows it.</summary>
public sealed record LuksSlotInfo
{
    /// <summary>True if the slot holds a key.</summary>
    public required bool Active { get; init; }

    /// <summary>PBKDF2 iterations (active slots only).</summary>
    public long? Iters { get; init; }

    /// <summary>Splitter stripes (active slots only).</summary>
    public long? Stripes { get; init; }

    /// <summary>Offset of the key material in bytes.</summary>
    public required long KeyOffset { get; init; }
}
