using System.Security.Cryptography;
using Block.Crypto.Ciphers;
using Block.Crypto.Hashing;
using Block.Crypto.Kdf;
using Block.Crypto.Qapi;

namespace Block.Crypto.Luks;

/// <summary>
/// A LUKS1 volume: its header, read from or written to an <see cref="ILuksStorage"/>, and once unlocked the
/// <see cref="SectorCipher"/> that encrypts its payload. This is the one entry point for raw LUKS images and for
/// qcow2's <c>encrypt.format=luks</c>.
/// </summary>
/// <remarks>
/// <para><b>Opening</b> (<see cref="OpenAsync"/>) reads and validates the header, then, given a passphrase, tries every
/// active key slot: PBKDF2 of the passphrase gives the slot key, which decrypts the slot's key material (sectors
/// numbered from 0 at the material); the anti-forensic merge gives a candidate master key, accepted when PBKDF2 of
/// it equals the header's digest. Without a passphrase the volume opens locked, for <c>qemu-img info</c>.</para>
/// <para><b>Creating</b> (<see cref="CreateAsync"/>) draws a random master key, salts and UUID, calibrates PBKDF2 to
/// the time budget, asks the storage for the room the layout needs, writes slot 0's key material and then the header.
/// Nothing is written before the options, the secret and the suite are known to be usable.</para>
/// <para><b>Keys.</b> The master key exists in managed memory only while it is derived or created, in a pinned array
/// that is wiped before the method returns; afterwards only the cipher's expanded keys remain, wiped by
/// <see cref="Dispose"/>.</para>
/// </remarks>
public sealed class LuksVolume : IDisposable
{
    private LuksVolume(LuksHeader header, SectorCipher? cipher)
    {
        Header = header;
        Cipher = cipher;
    }

    /// <summary>The header.</summary>
    public LuksHeader Header { get; }

    /// <summary>The payload cipher; null for a volume opened without a passphrase.</summary>
    public SectorCipher? Cipher { get; }

    /// <summary>True once a key slot has been unlocked.</summary>
    public bool IsUnlocked => Cipher != null;

    /// <summary>Where the payload starts, in bytes from the start of the LUKS area.</summary>
    public long PayloadOffset => Header.PayloadOffset;

    /// <summary>The volume as <c>qemu-img info</c> shows it.</summary>
    public LuksInfo Info => LuksInfo.From(Header);

    /// <summary>
    /// Opens the volume in <paramref name="storage"/>; with a <paramref name="passphrase"/>, unlocks it (without, the
    /// volume is locked: header only, no <see cref="Cipher"/>).
    /// </summary>
    /// <exception cref="ImageFormatException">The header is missing or damaged.</exception>
    /// <exception cref="BlockException">EACCES when no key slot accepts the passphrase; ENOTSUP for a suite or hash Block lacks.</exception>
    public static async ValueTask<LuksVolume> OpenAsync(ILuksStorage storage, ReadOnlyMemory<byte>? passphrase,
        CipherImplementation implementation = CipherImplementation.Auto, CancellationToken cancellationToken = default)
    {
        if (storage.Length < LuksHeader.Size)
            throw new ImageFormatException($"LUKS header is truncated: the volume has {storage.Length} bytes, {LuksHeader.Size} needed");
        var raw = new byte[LuksHeader.Size];
        await storage.ReadAsync(0, raw, cancellationToken).ConfigureAwait(false);
        var header = LuksHeader.Parse(raw, storage.Length);
        if (passphrase is not { } secret)
            return new LuksVolume(header, null);

        header.Suite.Validate();
        CryptoHash.EnsureSupported(header.Hash);
        byte[] masterKey = GC.AllocateArray<byte>((int)header.KeyBytes, pinned: true);
        byte[] material = GC.AllocateArray<byte>(header.KeyMaterialLength, pinned: true);
        try
        {
            foreach (var slot in header.Slots)
            {
                if (!slot.Active)
                    continue;
                await storage.ReadAsync(slot.KeyMaterialOffset, material, cancellationToken).ConfigureAwait(false);
                if (TryUnlock(header, slot, secret.Span, material, masterKey, implementation))
                    return new LuksVolume(header, SectorCipher.Create(header.Suite, masterKey, implementation));
            }
        }
        finally
        {
            CryptographicOperations.ZeroMemory(masterKey);
            CryptographicOperations.ZeroMemory(material);
        }
        throw new BlockException(Errno.EACCES, "Invalid password, cannot unlock any keyslot");
    }

    /// <summary>
    /// Creates a volume in <paramref name="storage"/> with <paramref name="passphrase"/> in key slot 0, laid out as
    /// QEMU and cryptsetup lay it out (<see cref="LuksLayout"/>), and returns it unlocked.
    /// </summary>
    /// <exception cref="BlockException">ENOTSUP for a suite or hash Block lacks, ERANGE for an iteration time too large; nothing is written then.</exception>
    public static async ValueTask<LuksVolume> CreateAsync(ILuksStorage storage, LuksCreateOptions options, ReadOnlyMemory<byte> passphrase,
        CancellationToken cancellationToken = default)
    {
        var suite = options.Suite;
        suite.Validate();
        CryptoHash.EnsureSupported(options.Hash);
        var hash = options.Hash;
        int keyBytes = suite.KeyLength;

        ulong mkIterations = Math.Max(1000, Pbkdf2.IterationsFor(hash, LuksHeader.DigestSize, options.IterTimeMilliseconds) / 8);
        ulong slotIterations = Math.Max(1000, Pbkdf2.IterationsFor(hash, keyBytes, options.IterTimeMilliseconds));
        if (mkIterations > Pbkdf2.MaxIterations || slotIterations > Pbkdf2.MaxIterations)
            throw new BlockException(Errno.ERANGE, $"PBKDF iterations {Math.Max(mkIterations, slotIterations)} too large to scale: Numerical result out of range");

        byte[] masterKey = GC.AllocateArray<byte>(keyBytes, pinned: true);
        byte[] slotKey = GC.AllocateArray<byte>(keyBytes, pinned: true);
        byte[] material = GC.AllocateArray<byte>(keyBytes * (int)LuksHeader.Stripes, pinned: true);
        try
        {
            RandomNumberGenerator.Fill(masterKey);
            var mkSalt = RandomNumberGenerator.GetBytes(LuksHeader.SaltSize);
            var mkDigest = new byte[LuksHeader.DigestSize];
            Pbkdf2.Derive(hash, masterKey, mkSalt, (uint)mkIterations, mkDigest);

            var slotSalt = RandomNumberGenerator.GetBytes(LuksHeader.SaltSize);
            Pbkdf2.Derive(hash, passphrase.Span, slotSalt, (uint)slotIterations, slotKey);
            AfSplitter.Split(hash, masterKey, (int)LuksHeader.Stripes, material);
            using (var slotCipher = SectorCipher.Create(suite, slotKey, options.Implementation))
                slotCipher.Encrypt(material, 0);

            var slots = new LuksKeySlot[LuksHeader.SlotCount];
            for (int i = 0; i < slots.Length; i++)
            {
                slots[i] = new LuksKeySlot(i == 0, i == 0 ? (uint)slotIterations : 0,
                    i == 0 ? slotSalt : new byte[LuksHeader.SaltSize], LuksLayout.SlotOffsetSectors(keyBytes, i), LuksHeader.Stripes);
            }
            var header = new LuksHeader
            {
                CipherName = LuksCipherSpec.CipherName(suite),
                CipherMode = LuksCipherSpec.CipherMode(suite),
                HashSpec = CryptoWireNames.ToWire(hash),
                Suite = suite,
                Hash = hash,
                PayloadOffsetSectors = LuksLayout.PayloadOffsetSectors(keyBytes),
                KeyBytes = (uint)keyBytes,
                MasterKeyDigest = mkDigest,
                MasterKeySalt = mkSalt,
                MasterKeyIterations = (uint)mkIterations,
                Uuid = Guid.NewGuid().ToString("D"),
                Slots = slots,
            };

            var cipher = SectorCipher.Create(suite, masterKey, options.Implementation);
            try
            {
                await storage.InitializeAsync(header.PayloadOffset, cancellationToken).ConfigureAwait(false);
                await storage.WriteAsync(slots[0].KeyMaterialOffset, material, cancellationToken).ConfigureAwait(false);
                var raw = new byte[LuksHeader.Size];
                header.WriteTo(raw);
                await storage.WriteAsync(0, raw, cancellationToken).ConfigureAwait(false);
            }
            catch
            {
                cipher.Dispose();
                throw;
            }
            return new LuksVolume(header, cipher);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(masterKey);
            CryptographicOperations.ZeroMemory(slotKey);
            CryptographicOperations.ZeroMemory(material);
        }
    }

    /// <summary>Wipes the payload cipher's keys.</summary>
    public void Dispose() => Cipher?.Dispose();

    private static bool TryUnlock(LuksHeader header, LuksKeySlot slot, ReadOnlySpan<byte> passphrase, byte[] material, byte[] masterKey,
        CipherImplementation implementation)
    {
        Span<byte> slotKey = stackalloc byte[(int)header.KeyBytes];
        Span<byte> digest = stackalloc byte[LuksHeader.DigestSize];
        try
        {
            Pbkdf2.Derive(header.Hash, passphrase, slot.Salt.Span, slot.Iterations, slotKey);
            using (var slotCipher = SectorCipher.Create(header.Suite, slotKey, implementation))
                slotCipher.Decrypt(material, 0);
            AfSplitter.Merge(header.Hash, material, (int)LuksHeader.Stripes, masterKey);
            Pbkdf2.Derive(header.Hash, masterKey, header.MasterKeySalt.Span, header.MasterKeyIterations, digest);
            return CryptographicOperations.FixedTimeEquals(digest, header.MasterKeyDigest.Span);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(slotKey);
            CryptographicOperations.ZeroMemory(digest);
        }
    }
}
