using System.Security.Cryptography;
using Block.Crypto.Qapi;

namespace Block.Crypto.Hashing;

/// <summary>The digest functions behind <see cref="CryptoHashAlgorithm"/>: sizes, availability and one-shot hashing.</summary>
public static class CryptoHash
{
    /// <summary>True if Block can compute <paramref name="algorithm"/> (the BCL has no SHA-224 or RIPEMD-160).</summary>
    public static bool IsSupported(CryptoHashAlgorithm algorithm) =>
        algorithm is CryptoHashAlgorithm.Md5 or CryptoHashAlgorithm.Sha1 or CryptoHashAlgorithm.Sha256
            or CryptoHashAlgorithm.Sha384 or CryptoHashAlgorithm.Sha512;

    /// <summary>The digest size in bytes.</summary>
    public static int DigestSize(CryptoHashAlgorithm algorithm) => algorithm switch
    {
        CryptoHashAlgorithm.Md5 => 16,
        CryptoHashAlgorithm.Sha1 => 20,
        CryptoHashAlgorithm.Sha224 => 28,
        CryptoHashAlgorithm.Sha256 => 32,
        CryptoHashAlgorithm.Sha384 => 48,
        CryptoHashAlgorithm.Sha512 => 64,
        CryptoHashAlgorithm.Ripemd160 => 20,
        _ => throw new ArgumentOutOfRangeException(nameof(algorithm)),
    };

    /// <summary>The BCL name of <paramref name="algorithm"/>.</summary>
    /// <exception cref="BlockException">ENOTSUP for a digest Block cannot compute.</exception>
    public static HashAlgorithmName Name(CryptoHashAlgorithm algorithm) => algorithm switch
    {
        CryptoHashAlgorithm.Md5 => HashAlgorithmName.MD5,
        CryptoHashAlgorithm.Sha1 => HashAlgorithmName.SHA1,
        CryptoHashAlgorithm.Sha256 => HashAlgorithmName.SHA256,
        CryptoHashAlgorithm.Sha384 => HashAlgorithmName.SHA384,
        CryptoHashAlgorithm.Sha512 => HashAlgorithmName.SHA512,
        _ => throw NotSupported(algorithm),
    };

    /// <summary>Throws unless Block can compute <paramref name="algorithm"/>.</summary>
    public static void EnsureSupported(CryptoHashAlgorithm algorithm)
    {
        if (!IsSupported(algorithm))
            throw NotSupported(algorithm);
    }

    /// <summary>Hashes <paramref name="data"/> into <paramref name="digest"/> (exactly <see cref="DigestSize"/> bytes).</summary>
    public static void Hash(CryptoHashAlgorithm algorithm, ReadOnlySpan<byte> data, Span<byte> digest)
    {
        int written = algorithm switch
        {
            CryptoHashAlgorithm.Md5 => MD5.HashData(data, digest),
            CryptoHashAlgorithm.Sha1 => SHA1.HashData(data, digest),
            CryptoHashAlgorithm.Sha256 => SHA256.HashData(data, digest),
            CryptoHashAlgorithm.Sha384 => SHA384.HashData(data, digest),
            CryptoHashAlgorithm.Sha512 => SHA512.HashData(data, digest),
            _ => throw NotSupported(algorithm),
        };
        if (written != digest.Length)
            throw new ArgumentException("digest buffer has the wrong size", nameof(digest));
    }

    private static BlockException NotSupported(CryptoHashAlgorithm algorithm) =>
        new(Errno.ENOTSUP, $"Hash algorithm '{CryptoWireNames.ToWire(algorithm)}' is not supported by Block");
}
