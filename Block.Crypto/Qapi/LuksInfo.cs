using System.Text.Json;
using Block.Crypto.Luks;

namespace Block.Crypto.Qapi;

/// <summary>
/// QAPI <c>QCryptoBlockInfoLUKS</c>: what <c>qemu-img info</c> shows about a LUKS volume, for a raw LUKS image
/// (<c>format-specific</c> of type <c>luks</c>) and for qcow2's <c>encrypt</c> member (with <c>format: luks</c>).
/// </summary>
public sealed record LuksInfo
{
    /// <summary>The cipher.</summary>
    public required CryptoCipherAlgorithm CipherAlg { get; init; }

    /// <summary>The cipher mode.</summary>
    public required CryptoCipherMode CipherMode { get; init; }

    /// <summary>The IV generator.</summary>
    public required CryptoIvGenAlgorithm IvGenAlg { get; init; }

    /// <summary>The ESSIV hash, when the IV generator is ESSIV.</summary>
    public CryptoHashAlgorithm? IvGenHashAlg { get; init; }

    /// <summary>The PBKDF2 and splitter hash.</summary>
    public required CryptoHashAlgorithm HashAlg { get; init; }

    /// <summary>The payload offset in bytes.</summary>
    public required long PayloadOffset { get; init; }

    /// <summary>PBKDF2 iterations of the master key digest.</summary>
    public required long MasterKeyIters { get; init; }

    /// <summary>The volume UUID.</summary>
    public required string Uuid { get; init; }

    /// <summary>The key slots.</summary>
    public required IReadOnlyList<LuksSlotInfo> Slots { get; init; }

    /// <summary>The information of <paramref name="header"/>.</summary>
    public static LuksInfo From(LuksHeader header) => new()
    {
        CipherAlg = header.Suite.Algorithm,
        CipherMode = header.Suite.Mode,
        IvGenAlg = header.Suite.IvGen,
        IvGenHashAlg = header.Suite.IvGen == CryptoIvGenAlgorithm.Essiv ? header.Suite.IvGenHash : null,
        HashAlg = header.Hash,
        PayloadOffset = header.PayloadOffset,
        MasterKeyIters = header.MasterKeyIterations,
        Uuid = header.Uuid,
        Slots = [.. header.Slots.Select(s => new LuksSlotInfo
        {
            Active = s.Active,
            Iters = s.Active ? s.Iterations : null,
            Stripes = s.Active ? s.Stripes : null,
            KeyOffset = s.KeyMaterialOffset,
        })],
    };

    /// <summary>
    /// Writes the members (in schema order) into the object <paramref name="writer"/> is in; qcow2 writes its
    /// <c>format</c> discriminator first.
    /// </summary>
    public void WriteMembers(Utf8JsonWriter writer)
    {
        writer.WriteString("cipher-alg", CryptoWireNames.ToWire(CipherAlg));
        writer.WriteString("cipher-mode", CryptoWireNames.ToWire(CipherMode));
        writer.WriteString("ivgen-alg", CryptoWireNames.ToWire(IvGenAlg));
        if (IvGenHashAlg is { } ivgenHash)
            writer.WriteString("ivgen-hash-alg", CryptoWireNames.ToWire(ivgenHash));
        writer.WriteString("hash-alg", CryptoWireNames.ToWire(HashAlg));
        writer.WriteNumber("payload-offset", PayloadOffset);
        writer.WriteNumber("master-key-iters", MasterKeyIters);
        writer.WriteString("uuid", Uuid);
        writer.WriteStartArray("slots");
        foreach (var slot in Slots)
        {
            writer.WriteStartObject();
            writer.WriteBoolean("active", slot.Active);
            if (slot.Iters is { } iters)
                writer.WriteNumber("iters", iters);
            if (slot.Stripes is { } stripes)
                writer.WriteNumber("stripes", stripes);
            writer.WriteNumber("key-offset", slot.KeyOffset);
            writer.WriteEndObject();
        }
        writer.WriteEndArray();
    }
}
