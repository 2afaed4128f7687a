using System.Buffers.Binary;
using System.Security.Cryptography;
using Block.Crypto.Hashing;
using Block.Crypto.Qapi;

namespace Block.Crypto.Ciphers;

/// <summary>Turns a sector number into that sector's IV (dm-crypt's and QEMU's IV generators).</summary>
internal sealed class IvGenerator : IDisposable
{
    private readonly CryptoIvGenAlgorithm _algorithm;
    private readonly BlockCipher? _essiv;

    private IvGenerator(CryptoIvGenAlgorithm algorithm, int ivLength, BlockCipher? essiv)
    {
        _algorithm = algorithm;
        IvLength = ivLength;
        _essiv = essiv;
    }

    /// <summary>The IV's length: the cipher's block size.</summary>
    public int IvLength { get; }

    /// <summary>The generator of <paramref name="suite"/>; ESSIV hashes <paramref name="masterKey"/> to key its cipher.</summary>
    public static IvGenerator Create(CipherSuite suite, ReadOnlySpan<byte> masterKey, CipherImplementation implementation)
    {
        if (suite.IvGen != CryptoIvGenAlgorithm.Essiv)
            return new IvGenerator(suite.IvGen, suite.BlockSize, null);
        var hash = suite.IvGenHash!.Value;
        Span<byte> salt = stackalloc byte[CryptoHash.DigestSize(hash)];
        try
        {
            CryptoHash.Hash(hash, masterKey, salt);
            return new IvGenerator(suite.IvGen, suite.BlockSize, BlockCiphers.Create(suite.EssivAlgorithm(), salt, implementation));
        }
        finally
        {
            CryptographicOperations.ZeroMemory(salt);
        }
    }

    /// <summary>Writes the IV of <paramref name="sector"/> into <paramref name="iv"/> (<see cref="IvLength"/> bytes).</summary>
    public void Generate(ulong sector, Span<byte> iv)
    {
        iv.Clear();
        switch (_algorithm)
        {
            case CryptoIvGenAlgorithm.Plain:
                BinaryPrimitives.WriteUInt32LittleEndian(iv, (uint)sector);
                break;
            case CryptoIvGenAlgorithm.Plain64:
                BinaryPrimitives.WriteUInt64LittleEndian(iv, sector);
                break;
            default:
                BinaryPrimitives.WriteUInt64LittleEndian(iv, sector);
                _essiv!.EncryptEcb(iv, iv);
                break;
        }
    }

    /// <inheritdoc />
    public void Dispose() => _essiv?.Dispose();
}
