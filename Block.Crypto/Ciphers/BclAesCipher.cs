using System.Security.Cryptography;

namespace Block.Crypto.Ciphers;

/// <summary>
/// AES through the platform's library (<see cref="System.Security.Cryptography.Aes"/>: OpenSSL on Linux), for machines
/// without AES-NI. XTS runs a sector's 32 blocks per ECB call (see <see cref="BlockCipher"/>); CBC is one library call
/// per chain.
/// </summary>
/// <remarks>
/// The library's one-shot methods make a native cipher context per call, so one instance is safe to share between
/// threads. The library object holds its own copy of the key and wipes it when disposed.
/// </remarks>
internal sealed class BclAesCipher : BlockCipher
{
    private readonly System.Security.Cryptography.Aes _aes;

    /// <summary>Creates the cipher for <paramref name="key"/> (16, 24 or 32 bytes).</summary>
    public BclAesCipher(ReadOnlySpan<byte> key)
    {
        AesKeyExpansion.Rounds(key.Length);
        _aes = System.Security.Cryptography.Aes.Create();
        byte[] copy = key.ToArray();
        try
        {
            _aes.Key = copy;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(copy);
        }
    }

    /// <inheritdoc />
    public override int BlockSize => 16;

    /// <inheritdoc />
    public override void EncryptEcb(ReadOnlySpan<byte> source, Span<byte> destination) =>
        _aes.EncryptEcb(source, destination, PaddingMode.None);

    /// <inheritdoc />
    public override void DecryptEcb(ReadOnlySpan<byte> source, Span<byte> destination) =>
        _aes.DecryptEcb(source, destination, PaddingMode.None);

    /// <inheritdoc />
    public override void EncryptCbc(ReadOnlySpan<byte> source, Span<byte> destination, ReadOnlySpan<byte> iv) =>
        _aes.EncryptCbc(source, iv[..16], destination, PaddingMode.None);

    /// <inheritdoc />
    public override void DecryptCbc(ReadOnlySpan<byte> source, Span<byte> destination, ReadOnlySpan<byte> iv) =>
        _aes.DecryptCbc(source, iv[..16], destination, PaddingMode.None);

    /// <inheritdoc />
    public override void Dispose() => _aes.Dispose();
}
