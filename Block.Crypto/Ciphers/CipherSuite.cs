using Block.Crypto.Hashing;
using Block.Crypto.Qapi;

namespace Block.Crypto.Ciphers;

/// <summary>
/// What encrypts a sector: a block cipher, the mode that chains it over the sector, and the generator that turns the
/// sector number into the IV (with the hash ESSIV keys its IV cipher with).
/// </summary>
/// <param name="Algorithm">The block cipher and its key size.</param>
/// <param name="Mode">The chaining mode.</param>
/// <param name="IvGen">The IV generator.</param>
/// <param name="IvGenHash">The hash of the master key that keys the ESSIV cipher; other IV generators ignore it.</param>
public sealed record CipherSuite(
    CryptoCipherAlgorithm Algorithm,
    CryptoCipherMode Mode,
    CryptoIvGenAlgorithm IvGen,
    CryptoHashAlgorithm? IvGenHash = null)
{
    /// <summary>QEMU's default for LUKS and for qcow2's <c>encrypt.format=luks</c>: AES-256 in XTS mode with plain64 IVs.</summary>
    public static CipherSuite Default { get; } = new(CryptoCipherAlgorithm.Aes256, CryptoCipherMode.Xts, CryptoIvGenAlgorithm.Plain64);

    /// <summary>The master key's length in bytes: the cipher's key, twice for XTS (data key, then tweak key).</summary>
    public int KeyLength => CipherKeyLength(Algorithm) * (Mode == CryptoCipherMode.Xts ? 2 : 1);

    /// <summary>The cipher's block size in bytes; every encrypted length is a multiple of it.</summary>
    public int BlockSize => CipherBlockSize(Algorithm);

    /// <summary>The key length of one cipher of <paramref name="algorithm"/>, in bytes.</summary>
    public static int CipherKeyLength(CryptoCipherAlgorithm algorithm) => algorithm switch
    {
        CryptoCipherAlgorithm.Des => 8,
        CryptoCipherAlgorithm.Aes128 or CryptoCipherAlgorithm.Cast5_128 or CryptoCipherAlgorithm.Serpent128 or CryptoCipherAlgorithm.Twofish128 => 16,
        CryptoCipherAlgorithm.Aes192 or CryptoCipherAlgorithm.TripleDes or CryptoCipherAlgorithm.Serpent192 or CryptoCipherAlgorithm.Twofish192 => 24,
        CryptoCipherAlgorithm.Aes256 or CryptoCipherAlgorithm.Serpent256 or CryptoCipherAlgorithm.Twofish256 => 32,
        _ => throw new ArgumentOutOfRangeException(nameof(algorithm)),
    };

    /// <summary>The block size of <paramref name="algorithm"/>, in bytes.</summary>
    public static int CipherBlockSize(CryptoCipherAlgorithm algorithm) => algorithm switch
    {
        CryptoCipherAlgorithm.Des or CryptoCipherAlgorithm.TripleDes or CryptoCipherAlgorithm.Cast5_128 => 8,
        _ => 16,
    };

    /// <summary>True if Block implements <paramref name="algorithm"/> (AES today).</summary>
    public static bool IsSupported(CryptoCipherAlgorithm algorithm) =>
        algorithm is CryptoCipherAlgorithm.Aes128 or CryptoCipherAlgorithm.Aes192 or CryptoCipherAlgorithm.Aes256;

    /// <summary>
    /// The cipher ESSIV encrypts IVs with: the same family as <see cref="Algorithm"/>, keyed by the hash of the master
    /// key, so its key size is the digest size.
    /// </summary>
    /// <exception cref="BlockException">No cipher of the family takes a key of the digest's size.</exception>
    public CryptoCipherAlgorithm EssivAlgorithm()
    {
        var hash = IvGenHash ?? throw new BlockOptionsException("ESSIV needs a hash algorithm (ivgen-hash-alg)");
        int keyLength = CryptoHash.DigestSize(hash);
        string family = Family(Algorithm);
        foreach (var candidate in Enum.GetValues<CryptoCipherAlgorithm>())
        {
            if (Family(candidate) == family && CipherKeyLength(candidate) == keyLength)
                return candidate;
        }
        throw new BlockException(Errno.EINVAL, $"No {family.ToUpperInvariant()} cipher with key size {keyLength} available");
    }

    /// <summary>Throws unless Block can encrypt with this suite, naming what it lacks.</summary>
    /// <exception cref="BlockException">ENOTSUP for an algorithm, mode or hash Block does not implement; EINVAL for a suite that cannot work.</exception>
    public void Validate()
    {
        if (!IsSupported(Algorithm))
            throw NotSupported(Algorithm);
        if (Mode == CryptoCipherMode.Ctr)
            throw new BlockException(Errno.ENOTSUP, "Cipher mode 'ctr' is not supported by Block");
        if (Mode == CryptoCipherMode.Xts && BlockSize != 16)
            throw new BlockException(Errno.EINVAL, "XTS mode needs a cipher with 16-byte blocks");
        if (IvGen == CryptoIvGenAlgorithm.Essiv)
        {
            CryptoHash.EnsureSupported(IvGenHash ?? throw new BlockOptionsException("ESSIV needs a hash algorithm (ivgen-hash-alg)"));
            EssivAlgorithm();
        }
    }

    internal static BlockException NotSupported(CryptoCipherAlgorithm algorithm) =>
        new(Errno.ENOTSUP, $"Cipher algorithm '{CryptoWireNames.ToWire(algorithm)}' is not supported by Block");

    private static string Family(CryptoCipherAlgorithm algorithm)
    {
        string wire = CryptoWireNames.ToWire(algorithm);
        int dash = wire.IndexOf('-');
        return dash < 0 ? wire : wire[..dash];
    }
}
