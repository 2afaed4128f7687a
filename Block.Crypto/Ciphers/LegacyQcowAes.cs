using System.Security.Cryptography;
using System.Text.Unicode;
using Block.Crypto.Qapi;

namespace Block.Crypto.Ciphers;

/// <summary>
/// The legacy AES encryption of qcow (v1) and qcow2 images (<c>encrypt.format=aes</c>): AES-128-CBC on each 512-byte
/// sector, plain64 IVs from the guest sector number, and a key that is the secret's text itself.
/// </summary>
/// <remarks>
/// There is no key derivation and nothing in the image that tells a wrong key: any secret opens such an image, and a
/// wrong one reads noise. Both formats key it the same way, so it lives here once rather than in each format.
/// </remarks>
public static class LegacyQcowAes
{
    private const int KeyBytes = 16;

    /// <summary>The suite: AES-128, CBC, plain64 IVs.</summary>
    public static CipherSuite Suite { get; } = new(CryptoCipherAlgorithm.Aes128, CryptoCipherMode.Cbc, CryptoIvGenAlgorithm.Plain64);

    /// <summary>
    /// The cipher keyed by <paramref name="secret"/>: its text up to a NUL, cut or zero-padded to 16 bytes, as QEMU
    /// keys it; <paramref name="secretId"/> names the secret in errors.
    /// </summary>
    /// <exception cref="BlockException">The secret's text is not UTF-8 (QEMU's message).</exception>
    public static SectorCipher CreateCipher(ReadOnlySpan<byte> secret, string secretId)
    {
        int nul = secret.IndexOf((byte)0);
        var text = nul >= 0 ? secret[..nul] : secret;
        if (!Utf8.IsValid(text))
            throw new BlockException(Errno.EINVAL, $"Data from secret {secretId} is not valid UTF-8");
        Span<byte> key = stackalloc byte[KeyBytes];
        key.Clear();
        text[..Math.Min(text.Length, KeyBytes)].CopyTo(key);
        try
        {
            return SectorCipher.Create(Suite, key);
        }
        finally
        {
            CryptographicOperations.ZeroMemory(key);
        }
    }
}
