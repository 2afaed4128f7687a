using Block.Crypto.Qapi;

namespace Block.Crypto.Ciphers;

/// <summary>Creates the <see cref="BlockCipher"/> for an algorithm and key.</summary>
internal static class BlockCiphers
{
    /// <summary>A cipher for <paramref name="algorithm"/> keyed with <paramref name="key"/>.</summary>
    /// <exception cref="BlockException">ENOTSUP for an algorithm Block does not implement.</exception>
    public static BlockCipher Create(CryptoCipherAlgorithm algorithm, ReadOnlySpan<byte> key, CipherImplementation implementation)
    {
        if (key.Length != CipherSuite.CipherKeyLength(algorithm))
            throw new ArgumentException($"{algorithm} needs a {CipherSuite.CipherKeyLength(algorithm)}-byte key, not {key.Length} bytes", nameof(key));
        switch (algorithm)
        {
            case CryptoCipherAlgorithm.Aes128:
            case CryptoCipherAlgorithm.Aes192:
            case CryptoCipherAlgorithm.Aes256:
                return implementation switch
                {
                    CipherImplementation.Intrinsics => new AesNiCipher(key),
                    CipherImplementation.Library => new BclAesCipher(key),
                    _ => AesNiCipher.IsSupported ? new AesNiCipher(key) : new BclAesCipher(key),
                };
            default:
                throw CipherSuite.NotSupported(algorithm);
        }
    }
}
