using BenchmarkDotNet.Attributes;
using Block.Crypto.Ciphers;
using Block.Crypto.Qapi;

namespace Block.Bench;

/// <summary>
/// Sector encryption throughput on one core: AES-XTS (LUKS's default) on AES-NI and on the platform library, and
/// AES-CBC-ESSIV, over 16 KiB buffers of 512-byte sectors — the figure to put beside
/// <c>openssl speed -evp aes-256-xts</c>'s 16384-byte column.
/// </summary>
[MemoryDiagnoser]
public class AesXtsBenchmarks
{
    private const int BufferBytes = 16384;
    private SectorCipher _cipher = null!;
    private byte[] _data = null!;

    /// <summary>The suite: XTS-AES-256 and XTS-AES-128 with plain64 IVs, CBC-AES-256 with ESSIV.</summary>
    [Params("xts-aes-256", "xts-aes-128", "cbc-essiv-aes-256")]
    public string Suite { get; set; } = "xts-aes-256";

    /// <summary>AES-NI through intrinsics, or the platform library (OpenSSL) through <c>Aes.EncryptEcb</c>.</summary>
    [Params(CipherImplementation.Intrinsics, CipherImplementation.Library)]
    public CipherImplementation Implementation { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var suite = Suite switch
        {
            "xts-aes-128" => new CipherSuite(CryptoCipherAlgorithm.Aes128, CryptoCipherMode.Xts, CryptoIvGenAlgorithm.Plain64),
            "cbc-essiv-aes-256" => new CipherSuite(CryptoCipherAlgorithm.Aes256, CryptoCipherMode.Cbc, CryptoIvGenAlgorithm.Essiv, CryptoHashAlgorithm.Sha256),
            _ => CipherSuite.Default,
        };
        var key = new byte[suite.KeyLength];
        new Random(1).NextBytes(key);
        _cipher = SectorCipher.Create(suite, key, Implementation);
        _data = new byte[BufferBytes];
        new Random(2).NextBytes(_data);
    }

    [GlobalCleanup]
    public void Cleanup() => _cipher.Dispose();

    /// <summary>Encrypts 16 KiB (32 sectors) in place.</summary>
    [Benchmark]
    public void Encrypt16K() => _cipher.Encrypt(_data, 1000);

    /// <summary>Decrypts 16 KiB (32 sectors) in place.</summary>
    [Benchmark]
    public void Decrypt16K() => _cipher.Decrypt(_data, 1000);
}
