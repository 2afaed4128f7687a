using System.Buffers.Binary;
using System.Text;
using Block.Crypto.Ciphers;
using Block.Crypto.Qapi;

namespace Block.Crypto.Luks;

/// <summary>
/// A LUKS1 header (the LUKS1 on-disk format specification, 592 bytes, big-endian): cipher suite, master key digest,
/// payload offset, UUID and eight key slots. <see cref="Parse"/> validates every field that later code relies on;
/// <see cref="WriteTo"/> writes it back.
/// </summary>
/// <remarks>
/// Layout: 0 magic <c>LUKS\xBA\xBE</c>; 6 u16 version (1); 8 cipher_name[32]; 40 cipher_mode[32]; 72 hash_spec[32];
/// 104 u32 payload_offset (sectors); 108 u32 key_bytes; 112 mk_digest[20]; 132 mk_digest_salt[32]; 164 u32
/// mk_digest_iter; 168 uuid[40]; 208 eight slots of 48 bytes (u32 active, u32 iterations, salt[32], u32
/// key_material_offset (sectors), u32 stripes). Offsets inside the header count from the start of the LUKS area: the
/// file for a raw LUKS image, the encryption clusters for qcow2.
/// </remarks>
public sealed record LuksHeader
{
    /// <summary>The header's size in bytes.</summary>
    public const int Size = 592;

    /// <summary>Key slots in a LUKS1 header.</summary>
    public const int SlotCount = 8;

    /// <summary>Stripes of the anti-forensic splitter: LUKS1 always uses 4000, and QEMU refuses slots with any other count.</summary>
    public const uint Stripes = 4000;

    /// <summary>Length of the master key digest.</summary>
    public const int DigestSize = 20;

    /// <summary>Length of the salts.</summary>
    public const int SaltSize = 32;

    private static ReadOnlySpan<byte> Magic => [(byte)'L', (byte)'U', (byte)'K', (byte)'S', 0xBA, 0xBE];

    /// <summary>The cipher family as written (<c>aes</c>).</summary>
    public required string CipherName { get; init; }

    /// <summary>The mode string as written (<c>xts-plain64</c>).</summary>
    public required string CipherMode { get; init; }

    /// <summary>The hash for PBKDF2 and the splitter as written (<c>sha256</c>).</summary>
    public required string HashSpec { get; init; }

    /// <summary>The suite the names and key size denote.</summary>
    public required CipherSuite Suite { get; init; }

    /// <summary>The hash <see cref="HashSpec"/> denotes.</summary>
    public required CryptoHashAlgorithm Hash { get; init; }

    /// <summary>Where encrypted data starts, in 512-byte sectors from the start of the LUKS area.</summary>
    public required uint PayloadOffsetSectors { get; init; }

    /// <summary>The master key's length in bytes.</summary>
    public required uint KeyBytes { get; init; }

    /// <summary>PBKDF2 of the master key with <see cref="MasterKeySalt"/> (20 bytes): how a candidate master key is recognised.</summary>
    public required ReadOnlyMemory<byte> MasterKeyDigest { get; init; }

    /// <summary>The salt of <see cref="MasterKeyDigest"/>.</summary>
    public required ReadOnlyMemory<byte> MasterKeySalt { get; init; }

    /// <summary>PBKDF2 iterations of <see cref="MasterKeyDigest"/>.</summary>
    public required uint MasterKeyIterations { get; init; }

    /// <summary>The volume's UUID text.</summary>
    public required string Uuid { get; init; }

    /// <summary>The eight key slots.</summary>
    public required IReadOnlyList<LuksKeySlot> Slots { get; init; }

    /// <summary>The payload offset in bytes.</summary>
    public long PayloadOffset => PayloadOffsetSectors * 512L;

    /// <summary>Bytes of key material per slot: the master key times the stripes.</summary>
    public int KeyMaterialLength => (int)(KeyBytes * Stripes);

    /// <summary>True if <paramref name="data"/> starts with the LUKS magic (format probing).</summary>
    public static bool HasMagic(ReadOnlySpan<byte> data) => data.Length >= Magic.Length && data[..Magic.Length].SequenceEqual(Magic);

    /// <summary>
    /// Parses and validates a header read from the start of a LUKS area of <paramref name="areaLength"/> bytes: every
    /// string terminated and known, key size valid for the cipher, iteration counts usable, every slot with 4000
    /// stripes and key material after the header, before the payload and not overlapping another slot, and each active
    /// slot's key material inside the area. Messages are QEMU's where QEMU checks the same thing.
    /// </summary>
    /// <exception cref="ImageFormatException">The header is not LUKS1 or is damaged; the message names the field.</exception>
    public static LuksHeader Parse(ReadOnlySpan<byte> data, long areaLength)
    {
        if (data.Length < Size)
            throw new ImageFormatException($"LUKS header is truncated: {data.Length} bytes, {Size} needed");
        if (!HasMagic(data))
            throw new ImageFormatException("Volume is not in LUKS format");
        ushort version = BinaryPrimitives.ReadUInt16BigEndian(data[6..]);
        if (version != 1)
            throw new ImageFormatException($"LUKS version {version} is not supported", Errno.ENOTSUP);

        string cipherName = ReadString(data.Slice(8, 32), "cipher_name");
        string cipherMode = ReadString(data.Slice(40, 32), "cipher_mode");
        string hashSpec = ReadString(data.Slice(72, 32), "hash_spec");
        uint payloadOffset = BinaryPrimitives.ReadUInt32BigEndian(data[104..]);
        uint keyBytes = BinaryPrimitives.ReadUInt32BigEndian(data[108..]);
        uint mkIterations = BinaryPrimitives.ReadUInt32BigEndian(data[164..]);
        string uuid = ReadString(data.Slice(168, 40), "uuid");

        var suite = LuksCipherSpec.Parse(cipherName, cipherMode, keyBytes);
        if (!CryptoWireNames.TryParse(hashSpec, out CryptoHashAlgorithm hash))
            throw new ImageFormatException($"Hash algorithm '{hashSpec}' not supported");
        if (mkIterations == 0)
            throw new ImageFormatException("LUKS key iteration count is zero");
        if (mkIterations > Kdf.Pbkdf2.MaxIterations)
            throw new ImageFormatException($"LUKS key iteration count {mkIterations} is larger than Block's limit {Kdf.Pbkdf2.MaxIterations}");

        // The slot checks QEMU makes, on every slot (disabled ones keep their offsets and stripes too): whatever the
        // passphrase, no slot may reach into the header, the payload or another slot.
        var slots = new LuksKeySlot[SlotCount];
        long materialSectors = ((long)keyBytes * Stripes + 511) / 512;
        long headerSectors = (Size + 511) / 512;
        for (int i = 0; i < SlotCount; i++)
        {
            var raw = data.Slice(208 + 48 * i, 48);
            uint state = BinaryPrimitives.ReadUInt32BigEndian(raw);
            uint iterations = BinaryPrimitives.ReadUInt32BigEndian(raw[4..]);
            uint keyOffset = BinaryPrimitives.ReadUInt32BigEndian(raw[40..]);
            uint stripes = BinaryPrimitives.ReadUInt32BigEndian(raw[44..]);
            bool active = state switch
            {
                LuksKeySlot.ActiveMarker => true,
                LuksKeySlot.DisabledMarker => false,
                _ => throw new ImageFormatException($"Keyslot {i} state (active/disable) is corrupted"),
            };
            slots[i] = new LuksKeySlot(active, iterations, raw.Slice(8, SaltSize).ToArray(), keyOffset, stripes);
            if (stripes != Stripes)
                throw new ImageFormatException($"Keyslot {i} is corrupted (stripes {stripes} != {Stripes})");
            if (keyOffset < headerSectors)
                throw new ImageFormatException($"Keyslot {i} is overlapping with the LUKS header");
            if (keyOffset + materialSectors > payloadOffset)
                throw new ImageFormatException($"Keyslot {i} is overlapping with the encrypted payload");
            for (int j = 0; j < i; j++)
            {
                uint other = slots[j].KeyMaterialOffsetSectors;
                if (keyOffset < other + materialSectors && other < keyOffset + materialSectors)
                    throw new ImageFormatException($"Keyslots {j} and {i} are overlapping in the header");
            }
            if (!active)
                continue;
            if (iterations == 0)
                throw new ImageFormatException($"Keyslot {i} iteration count is zero");
            if (iterations > Kdf.Pbkdf2.MaxIterations)
                throw new ImageFormatException($"Keyslot {i} iteration count {iterations} is larger than Block's limit {Kdf.Pbkdf2.MaxIterations}");
            if ((keyOffset + materialSectors) * 512 > areaLength)
                throw new ImageFormatException($"Keyslot {i} key material ends at byte {(keyOffset + materialSectors) * 512}, past the end of the image ({areaLength} bytes)");
        }

        return new LuksHeader
        {
            CipherName = cipherName,
            CipherMode = cipherMode,
            HashSpec = hashSpec,
            Suite = suite,
            Hash = hash,
            PayloadOffsetSectors = payloadOffset,
            KeyBytes = keyBytes,
            MasterKeyDigest = data.Slice(112, DigestSize).ToArray(),
            MasterKeySalt = data.Slice(132, SaltSize).ToArray(),
            MasterKeyIterations = mkIterations,
            Uuid = uuid,
            Slots = slots,
        };
    }

    /// <summary>Writes the header's <see cref="Size"/> bytes to <paramref name="destination"/>.</summary>
    public void WriteTo(Span<byte> destination)
    {
        var d = destination[..Size];
        d.Clear();
        Magic.CopyTo(d);
        BinaryPrimitives.WriteUInt16BigEndian(d[6..], 1);
        WriteString(d.Slice(8, 32), CipherName);
        WriteString(d.Slice(40, 32), CipherMode);
        WriteString(d.Slice(72, 32), HashSpec);
        BinaryPrimitives.WriteUInt32BigEndian(d[104..], PayloadOffsetSectors);
        BinaryPrimitives.WriteUInt32BigEndian(d[108..], KeyBytes);
        MasterKeyDigest.Span.CopyTo(d.Slice(112, DigestSize));
        MasterKeySalt.Span.CopyTo(d.Slice(132, SaltSize));
        BinaryPrimitives.WriteUInt32BigEndian(d[164..], MasterKeyIterations);
        WriteString(d.Slice(168, 40), Uuid);
        for (int i = 0; i < SlotCount; i++)
        {
            var slot = Slots[i];
            var raw = d.Slice(208 + 48 * i, 48);
            BinaryPrimitives.WriteUInt32BigEndian(raw, slot.Active ? LuksKeySlot.ActiveMarker : LuksKeySlot.DisabledMarker);
            BinaryPrimitives.WriteUInt32BigEndian(raw[4..], slot.Iterations);
            slot.Salt.Span.CopyTo(raw.Slice(8, SaltSize));
            BinaryPrimitives.WriteUInt32BigEndian(raw[40..], slot.KeyMaterialOffsetSectors);
            BinaryPrimitives.WriteUInt32BigEndian(raw[44..], slot.Stripes);
        }
    }

    private static string ReadString(ReadOnlySpan<byte> field, string name)
    {
        int end = field.IndexOf((byte)0);
        if (end < 0)
            throw new ImageFormatException($"LUKS header field {name} is not NUL-terminated");
        var text = field[..end];
        foreach (byte b in text)
        {
            if (b < 0x20 || b > 0x7e)
                throw new ImageFormatException($"LUKS header field {name} is not printable ASCII");
        }
        return Encoding.ASCII.GetString(text);
    }

    private static void WriteString(Span<byte> field, string text)
    {
        if (text.Length >= field.Length)
            throw new ArgumentException($"'{text}' does not fit a {field.Length}-byte LUKS header field");
        Encoding.ASCII.GetBytes(text, field);
    }
}
