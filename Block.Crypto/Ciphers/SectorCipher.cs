using Block.Crypto.Qapi;
using Block.Io;

namespace Block.Crypto.Ciphers;

/// <summary>
/// Encrypts and decrypts disk data sector by sector under a master key, as LUKS (and qcow2's LUKS encryption) lay it
/// out: 512-byte sectors, each with its own IV derived from a sector number that the caller supplies.
/// </summary>
/// <remarks>
/// <para><b>Sector numbers.</b> The caller decides what a sector number means, because formats differ: a raw LUKS
/// image numbers its payload from 0 (<c>guest offset / 512</c>), qcow2 uses the host offset of the data
/// (<c>host offset / 512</c>), and LUKS key material restarts at 0 for each key slot. A buffer of several sectors
/// uses <c>sector</c>, <c>sector + 1</c>, … for its consecutive 512-byte pieces.</para>
/// <para><b>Lengths.</b> Data is a whole number of cipher blocks (16 bytes for AES). Payload I/O is whole sectors; the
/// last piece may be shorter than a sector (LUKS key material of aes-192 ends mid-sector), and is then encrypted as the
/// beginning of its sector would be.</para>
/// <para><b>Buffers.</b> <c>Encrypt(data, sector)</c> works in place; the two-buffer forms read the source and write
/// the destination, which must be the same memory or not overlap at all. Nothing is allocated per call.</para>
/// <para><b>Threads and keys.</b> An instance is immutable after <see cref="Create"/> and may be used by any number of
/// threads at once. It holds expanded keys only (the master key passed in is not kept); <see cref="Dispose"/> wipes
/// them. With <see cref="CipherImplementation.Auto"/>, AES runs on AES-NI where the processor has it.</para>
/// </remarks>
public sealed class SectorCipher : IDisposable
{
    /// <summary>The sector size IVs count in: 512 bytes, whatever the device's sector size.</summary>
    public const int SectorSize = 512;

    private const int IvBatch = 32;

    private readonly BlockCipher _cipher;
    private readonly BlockCipher? _tweakCipher;
    private readonly IvGenerator _ivGenerator;

    private SectorCipher(CipherSuite suite, BlockCipher cipher, BlockCipher? tweakCipher, IvGenerator ivGenerator)
    {
        Suite = suite;
        _cipher = cipher;
        _tweakCipher = tweakCipher;
        _ivGenerator = ivGenerator;
    }

    /// <summary>The cipher, mode and IV generator.</summary>
    public CipherSuite Suite { get; }

    /// <summary>Creates a cipher for <paramref name="suite"/> under <paramref name="masterKey"/> (<see cref="CipherSuite.KeyLength"/> bytes; for XTS the data key then the tweak key).</summary>
    /// <exception cref="BlockException">The suite is one Block does not implement (see <see cref="CipherSuite.Validate"/>).</exception>
    public static SectorCipher Create(CipherSuite suite, ReadOnlySpan<byte> masterKey, CipherImplementation implementation = CipherImplementation.Auto)
    {
        suite.Validate();
        if (masterKey.Length != suite.KeyLength)
            throw new ArgumentException($"The suite needs a {suite.KeyLength}-byte key, not {masterKey.Length} bytes", nameof(masterKey));
        BlockCipher? cipher = null, tweak = null;
        try
        {
            if (suite.Mode == CryptoCipherMode.Xts)
            {
                int half = masterKey.Length / 2;
                cipher = BlockCiphers.Create(suite.Algorithm, masterKey[..half], implementation);
                tweak = BlockCiphers.Create(suite.Algorithm, masterKey[half..], implementation);
            }
            else
            {
                cipher = BlockCiphers.Create(suite.Algorithm, masterKey, implementation);
            }
            var ivGenerator = IvGenerator.Create(suite, masterKey, implementation);
            return new SectorCipher(suite, cipher, tweak, ivGenerator);
        }
        catch
        {
            cipher?.Dispose();
            tweak?.Dispose();
            throw;
        }
    }

    /// <summary>Encrypts <paramref name="data"/> in place; its first 512 bytes are sector <paramref name="sector"/>.</summary>
    public void Encrypt(Span<byte> data, ulong sector) => Encrypt(data, data, sector);

    /// <summary>Decrypts <paramref name="data"/> in place; its first 512 bytes are sector <paramref name="sector"/>.</summary>
    public void Decrypt(Span<byte> data, ulong sector) => Decrypt(data, data, sector);

    /// <summary>Encrypts <paramref name="source"/> into <paramref name="destination"/>; the first 512 bytes are sector <paramref name="sector"/>.</summary>
    public void Encrypt(ReadOnlySpan<byte> source, Span<byte> destination, ulong sector) => Run(source, destination, sector, encrypt: true);

    /// <summary>Decrypts <paramref name="source"/> into <paramref name="destination"/>; the first 512 bytes are sector <paramref name="sector"/>.</summary>
    public void Decrypt(ReadOnlySpan<byte> source, Span<byte> destination, ulong sector) => Run(source, destination, sector, encrypt: false);

    /// <summary>
    /// True if every segment of <paramref name="buffers"/> is a whole number of sectors, so that
    /// <see cref="Decrypt(IoVector, ulong)"/> can work in the caller's memory; otherwise a bounce buffer is needed.
    /// </summary>
    public static bool IsSectorAligned(IoVector buffers)
    {
        foreach (var segment in buffers)
        {
            if ((segment.Length & (SectorSize - 1)) != 0)
                return false;
        }
        return true;
    }

    /// <summary>
    /// Decrypts <paramref name="buffers"/> in place, segment after segment; the first 512 bytes are sector
    /// <paramref name="sector"/>. Every segment must be whole sectors (<see cref="IsSectorAligned"/>).
    /// </summary>
    public void Decrypt(IoVector buffers, ulong sector)
    {
        foreach (var segment in buffers)
        {
            Decrypt(segment.Span, sector);
            sector += (ulong)(segment.Length / SectorSize);
        }
    }

    /// <summary>Wipes the expanded keys.</summary>
    public void Dispose()
    {
        _cipher.Dispose();
        _tweakCipher?.Dispose();
        _ivGenerator.Dispose();
    }

    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    private void Run(ReadOnlySpan<byte> source, Span<byte> destination, ulong sector, bool encrypt)
    {
        if (source.Length % _cipher.BlockSize != 0)
            throw new ArgumentException($"Encrypted data is a whole number of {_cipher.BlockSize}-byte blocks, not {source.Length} bytes", nameof(source));
        if (destination.Length < source.Length)
            throw new ArgumentException("The destination is shorter than the source", nameof(destination));
        var mode = Suite.Mode;
        if (mode == CryptoCipherMode.Ecb)
        {
            if (encrypt)
                _cipher.EncryptEcb(source, destination);
            else
                _cipher.DecryptEcb(source, destination);
            return;
        }
        // IVs (and for XTS the tweaks, the IVs under the tweak key) for up to 32 sectors at a time: one call encrypts
        // them all, eight blocks in flight, where one call per sector would wait out the AES latency each time.
        int ivLength = _ivGenerator.IvLength;
        Span<byte> ivBuffer = stackalloc byte[IvBatch * 16];
        for (int offset = 0; offset < source.Length;)
        {
            int sectors = Math.Min(IvBatch, (source.Length - offset + SectorSize - 1) / SectorSize);
            var ivs = ivBuffer[..(sectors * ivLength)];
            _ivGenerator.Generate(sector, sectors, ivs);
            if (mode == CryptoCipherMode.Xts)
                _tweakCipher!.EncryptEcb(ivs, ivs);
            for (int i = 0; i < sectors; i++, offset += SectorSize)
            {
                int n = Math.Min(SectorSize, source.Length - offset);
                var from = source.Slice(offset, n);
                var to = destination.Slice(offset, n);
                var iv = ivs.Slice(i * ivLength, ivLength);
                if (mode == CryptoCipherMode.Xts)
                {
                    if (encrypt)
                        _cipher.EncryptXts(from, to, iv);
                    else
                        _cipher.DecryptXts(from, to, iv);
                }
                else if (encrypt)
                {
                    _cipher.EncryptCbc(from, to, iv);
                }
                else
                {
                    _cipher.DecryptCbc(from, to, iv);
                }
            }
            sector += (ulong)sectors;
        }
        // XTS tweaks are IVs under the tweak key: key-derived, so they do not stay on the stack.
        System.Security.Cryptography.CryptographicOperations.ZeroMemory(ivBuffer);
    }
}
