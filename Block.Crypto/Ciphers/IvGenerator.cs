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

    /// <summary>
    /// Writes the IVs of <paramref name="count"/> consecutive sectors from <paramref name="firstSector"/> into
    /// <paramref name="ivs"/> (<see cref="IvLength"/> bytes each); ESSIV encrypts them all in one call.
    /// </summary>
    [System.Runtime.CompilerServices.MethodImpl(System.Runtime.CompilerServices.MethodImplOptions.AggressiveOptimization)]
    public void Generate(ulong firstSector, int count, Span<byte> ivs)
    {
        int length = IvLength;
        ivs = ivs[..(count * length)];
        ivs.Clear();
        for (int i = 0; i < count; i++)
        {
            var iv = ivs.Slice(i * length, length);
            ulong sector = firstSector + (ulong)i;
            if (_algorithm == CryptoIvGenAlgorithm.Plain)
                BinaryPrimitives.WriteUInt32LittleEndian(iv, (uint)sector);
            else
                BinaryPrimitives.WriteUInt64LittleEndian(iv, sector);
        }
        _essiv?.EncryptEcb(ivs, ivs);
    }

    /// <inheritdoc />
    public void Dispose() => _essiv?.Dispose();
}
