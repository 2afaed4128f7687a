using Block.Crypto.Ciphers;
using Block.Crypto.Qapi;

namespace Block.Crypto.Tests;

/// <summary>
/// The cipher suite against published vectors: FIPS-197 Appendix C (AES block), NIST SP 800-38A (ECB and CBC), IEEE
/// 1619-2007 Annex B (XTS-AES-128 vectors 1–4, XTS-AES-256 vector 10), on both implementations (AES-NI, platform library).
/// </summary>
public class CipherVectorTests
{
    public static TheoryData<CipherImplementation> Implementations()
    {
        var data = new TheoryData<CipherImplementation> { CipherImplementation.Library };
        if (AesNiCipher.IsSupported)
            data.Add(CipherImplementation.Intrinsics);
        return data;
    }

    private static IEnumerable<CipherImplementation> AvailableImplementations =>
        AesNiCipher.IsSupported ? [CipherImplementation.Library, CipherImplementation.Intrinsics] : [CipherImplementation.Library];

    private static readonly byte[] s_pattern512 = [.. Enumerable.Range(0, 512).Select(i => (byte)i)];

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Aes_block_matches_FIPS_197_appendix_C(CipherImplementation impl)
    {
        var plain = Hex.Bytes("00112233445566778899aabbccddeeff");
        (CryptoCipherAlgorithm Alg, string Key, string Cipher)[] cases =
        [
            (CryptoCipherAlgorithm.Aes128, "000102030405060708090a0b0c0d0e0f", "69c4e0d86a7b0430d8cdb78070b4c55a"),
            (CryptoCipherAlgorithm.Aes192, "000102030405060708090a0b0c0d0e0f1011121314151617", "dda97ca4864cdfe06eaf70a0ec0d7191"),
            (CryptoCipherAlgorithm.Aes256, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", "8ea2b7ca516745bfeafc49904b496089"),
        ];
        foreach (var (alg, key, expected) in cases)
        {
            using var cipher = BlockCiphers.Create(alg, Hex.Bytes(key), impl);
            var block = plain.ToArray();
            cipher.EncryptEcb(block, block);
            Assert.Equal(expected, Hex.Of(block));
            cipher.DecryptEcb(block, block);
            Assert.Equal(plain, block);
        }
    }

    private const string Sp800Plain =
        "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710";

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Ecb_matches_SP_800_38A(CipherImplementation impl)
    {
        using var cipher = BlockCiphers.Create(CryptoCipherAlgorithm.Aes256,
            Hex.Bytes("603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4"), impl);
        var data = Hex.Bytes(Sp800Plain);
        cipher.EncryptEcb(data, data);
        Assert.Equal("f3eed1bdb5d2a03c064b5a7e3db181f8591ccb10d410ed26dc5ba74a31362870b6ed21b99ca6f4f9f153e7b1beafed1d23304b7a39f9f3ff067d8d8f9e24ecc7", Hex.Of(data));
        cipher.DecryptEcb(data, data);
        Assert.Equal(Sp800Plain, Hex.Of(data));
    }

    [Theory]
    [MemberData(nameof(Implementations))]
    public void Cbc_matches_SP_800_38A(CipherImplementation impl)
    {
        var iv = Hex.Bytes("000102030405060708090a0b0c0d0e0f");
        (CryptoCipherAlgorithm Alg, string Key, string Cipher)[] cases =
        [
            (CryptoCipherAlgorithm.Aes128, "2b7e151628aed2a6abf7158809cf4f3c",
                "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b273bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7"),
            (CryptoCipherAlgorithm.Aes256, "603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4",
                "f58c4c04d6e5f1ba779eabfb5f7bfbd69cfc4e967edb808d679f777bc6702c7d39f23369a9d9bacfa530e26304231461b2eb05e2c39be9fcda6c19078c6a9d1b"),
        ];
        foreach (var (alg, key, expected) in cases)
        {
            using var cipher = BlockCiphers.Create(alg, Hex.Bytes(key), impl);
            var data = Hex.Bytes(Sp800Plain);
            cipher.EncryptCbc(data, data, iv);
            Assert.Equal(expected, Hex.Of(data));
            cipher.DecryptCbc(data, data, iv);
            Assert.Equal(Sp800Plain, Hex.Of(data));
            // Out of place, the source is left alone.
            var source = Hex.Bytes(expected);
            var plain = new byte[source.Length];
            cipher.DecryptCbc(source, plain, iv);
            Assert.Equal(Sp800Plain, Hex.Of(plain));
            Assert.Equal(expected, Hex.Of(source));
        }
    }

    public static TheoryData<string, string, string, string> IeeeXtsVectors() => new()
    {
        // Vector 1
        { "0000000000000000000000000000000000000000000000000000000000000000", "00", new string('0', 64),
            "917cf69ebd68b2ec9b9fe9a3eadda692cd43d2f59598ed858c02c2652fbf922e" },
        // Vector 2
        { "1111111111111111111111111111111122222222222222222222222222222222", "3333333333", new string('4', 64),
            "c454185e6a16936e39334038acef838bfb186fff7480adc4289382ecd6d394f0" },
        // Vector 3
        { "fffefdfcfbfaf9f8f7f6f5f4f3f2f1f022222222222222222222222222222222", "3333333333", new string('4', 64),
            "af85336b597afc1a900b2eb21ec949d292df4c047e0b21532186a5971a227a89" },
        // Vector 4 (one 512-byte data unit)
        { "2718281828459045235360287471352631415926535897932384626433832795", "00", "pattern512",
            "27a7479befa1d476489f308cd4cfa6e2a96e4bbe3208ff25287dd3819616e89cc78cf7f5e543445f8333d8fa7f56000005279fa5d8b5e4ad40e736ddb4d35412" +
            "328063fd2aab53e5ea1e0a9f332500a5df9487d07a5c92cc512c8866c7e860ce93fdf166a24912b422976146ae20ce846bb7dc9ba94a767aaef20c0d61ad0265" +
            "5ea92dc4c4e41a8952c651d33174be51a10c421110e6d81588ede82103a252d8a750e8768defffed9122810aaeb99f9172af82b604dc4b8e51bcb08235a6f434" +
            "1332e4ca60482a4ba1a03b3e65008fc5da76b70bf1690db4eae29c5f1badd03c5ccf2a55d705ddcd86d449511ceb7ec30bf12b1fa35b913f9f747a8afd1b130e" +
            "94bff94effd01a91735ca1726acd0b197c4e5b03393697e126826fb6bbde8ecc1e08298516e2c9ed03ff3c1b7860f6de76d4cecd94c8119855ef5297ca67e9f3" +
            "e7ff72b1e99785ca0a7e7720c5b36dc6d72cac9574c8cbbc2f801e23e56fd344b07f22154beba0f08ce8891e643ed995c94d9a69c9f1b5f499027a78572aeebd" +
            "74d20cc39881c213ee770b1010e4bea718846977ae119f7a023ab58cca0ad752afe656bb3c17256a9f6e9bf19fdd5a38fc82bbe872c5539edb609ef4f79c203e" +
            "bb140f2e583cb2ad15b4aa5b655016a8449277dbd477ef2c8d6c017db738b18deb4a427d1923ce3ff262735779a418f20a282df920147beabe421ee5319d0568" },
        // Vector 10 (XTS-AES-256, data unit 0xff)
        { "27182818284590452353602874713526624977572470936999595749669676273141592653589793238462643383279502884197169399375105820974944592",
            "ff", "pattern512",
            "1c3b3a102f770386e4836c99e370cf9bea00803f5e482357a4ae12d414a3e63b5d31e276f8fe4a8d66b317f9ac683f44680a86ac35adfc3345befecb4bb188fd" +
            "5776926c49a3095eb108fd1098baec70aaa66999a72a82f27d848b21d4a741b0c5cd4d5fff9dac89aeba122961d03a757123e9870f8acf1000020887891429ca" +
            "2a3e7a7d7df7b10355165c8b9a6d0a7de8b062c4500dc4cd120c0f7418dae3d0b5781c34803fa75421c790dfe1de1834f280d7667b327f6c8cd7557e12ac3a0f" +
            "93ec05c52e0493ef31a12d3d9260f79a289d6a379bc70c50841473d1a8cc81ec583e9645e07b8d9670655ba5bbcfecc6dc3966380ad8fecb17b6ba02469a020a" +
            "84e18e8f84252070c13e9f1f289be54fbc481457778f616015e1327a02b140f1505eb309326d68378f8374595c849d84f4c333ec4423885143cb47bd71c5edae" +
            "9be69a2ffeceb1bec9de244fbe15992b11b77c040f12bd8f6a975a44a0f90c29a9abc3d4d893927284c58754cce294529f8614dcd2aba991925fedc4ae74ffac" +
            "6e333b93eb4aff0479da9a410e4450e0dd7ae4c6e2910900575da401fc07059f645e8b7e9bfdef33943054ff84011493c27b3429eaedb4ed5376441a77ed4385" +
            "1ad77f16f541dfd269d50d6a5f14fb0aab1cbb4c1550be97f7ab4066193c4caa773dad38014bd2092fa755c824bb5e54c4f36ffda9fcea70b9c6e693e148c151" },
    };

    [Theory]
    [MemberData(nameof(IeeeXtsVectors))]
    public void Xts_sector_cipher_matches_IEEE_1619(string key, string dataUnit, string plain, string expected)
    {
        // The data unit sequence number is the sector; plain64 writes it little-endian, as IEEE 1619 does.
        ulong sector = Convert.ToUInt64(dataUnit, 16);
        byte[] plaintext = plain == "pattern512" ? s_pattern512 : Hex.Bytes(plain);
        var keyBytes = Hex.Bytes(key);
        var alg = keyBytes.Length == 64 ? CryptoCipherAlgorithm.Aes256 : CryptoCipherAlgorithm.Aes128;
        foreach (var impl in AvailableImplementations)
        {
            using var cipher = SectorCipher.Create(new CipherSuite(alg, CryptoCipherMode.Xts, CryptoIvGenAlgorithm.Plain64), keyBytes, impl);
            var data = plaintext.ToArray();
            cipher.Encrypt(data, sector);
            Assert.Equal(expected, Hex.Of(data));
            cipher.Decrypt(data, sector);
            Assert.Equal(plaintext, data);
        }
    }

    [Theory]
    [InlineData(CryptoCipherAlgorithm.Aes128, CryptoCipherMode.Xts, CryptoIvGenAlgorithm.Plain64, null)]
    [InlineData(CryptoCipherAlgorithm.Aes256, CryptoCipherMode.Xts, CryptoIvGenAlgorithm.Plain, null)]
    [InlineData(CryptoCipherAlgorithm.Aes192, CryptoCipherMode.Xts, CryptoIvGenAlgorithm.Essiv, CryptoHashAlgorithm.Sha256)]
    [InlineData(CryptoCipherAlgorithm.Aes128, CryptoCipherMode.Cbc, CryptoIvGenAlgorithm.Essiv, CryptoHashAlgorithm.Sha256)]
    [InlineData(CryptoCipherAlgorithm.Aes256, CryptoCipherMode.Cbc, CryptoIvGenAlgorithm.Plain64, null)]
    [InlineData(CryptoCipherAlgorithm.Aes192, CryptoCipherMode.Cbc, CryptoIvGenAlgorithm.Plain, null)]
    [InlineData(CryptoCipherAlgorithm.Aes256, CryptoCipherMode.Ecb, CryptoIvGenAlgorithm.Plain64, null)]
    [InlineData(CryptoCipherAlgorithm.Aes128, CryptoCipherMode.Cbc, CryptoIvGenAlgorithm.Essiv, CryptoHashAlgorithm.Md5)]
    public void Both_implementations_agree_in_place_and_out_of_place(CryptoCipherAlgorithm alg, CryptoCipherMode mode, CryptoIvGenAlgorithm ivgen, CryptoHashAlgorithm? hash)
    {
        var suite = new CipherSuite(alg, mode, ivgen, hash);
        var rng = new Random(42);
        var key = new byte[suite.KeyLength];
        rng.NextBytes(key);
        // 37 sectors: more than one run of eight blocks, and a last piece shorter than a sector.
        var plain = new byte[37 * 512 - 48];
        rng.NextBytes(plain);
        ulong sector = 0xfffffffeUL;
        byte[]? reference = null;
        foreach (var impl in AvailableImplementations)
        {
            using var cipher = SectorCipher.Create(suite, key, impl);
            var inPlace = plain.ToArray();
            cipher.Encrypt(inPlace, sector);
            var outOfPlace = new byte[plain.Length];
            cipher.Encrypt(plain, outOfPlace, sector);
            Assert.Equal(inPlace, outOfPlace);
            reference ??= inPlace.ToArray();
            Assert.Equal(reference, inPlace);
            cipher.Decrypt(inPlace, sector);
            Assert.Equal(plain, inPlace);
            // Sector by sector equals all at once: the sector number advances every 512 bytes.
            var pieces = plain.ToArray();
            for (int i = 0; i < pieces.Length; i += 512)
                cipher.Encrypt(pieces.AsSpan(i, Math.Min(512, pieces.Length - i)), sector + (ulong)(i / 512));
            Assert.Equal(reference, pieces);
        }
    }

    [Fact]
    public void Plain_iv_wraps_at_32_bits_and_plain64_does_not()
    {
        var key = new byte[32];
        var data = new byte[512];
        using var plain = SectorCipher.Create(new CipherSuite(CryptoCipherAlgorithm.Aes128, CryptoCipherMode.Xts, CryptoIvGenAlgorithm.Plain), key);
        using var plain64 = SectorCipher.Create(new CipherSuite(CryptoCipherAlgorithm.Aes128, CryptoCipherMode.Xts, CryptoIvGenAlgorithm.Plain64), key);
        var a = data.ToArray();
        var b = data.ToArray();
        var c = data.ToArray();
        plain.Encrypt(a, 5);
        plain.Encrypt(b, (1UL << 32) + 5);
        plain64.Encrypt(c, (1UL << 32) + 5);
        Assert.Equal(a, b);
        Assert.NotEqual(a, c);
    }

    [Fact]
    public void Essiv_with_a_digest_no_AES_key_fits_is_refused_as_QEMU_does()
    {
        var suite = new CipherSuite(CryptoCipherAlgorithm.Aes256, CryptoCipherMode.Cbc, CryptoIvGenAlgorithm.Essiv, CryptoHashAlgorithm.Sha1);
        var e = Assert.Throws<BlockException>(suite.Validate);
        Assert.Equal("No AES cipher with key size 20 available", e.Message);
    }

    [Theory]
    [InlineData(CryptoCipherAlgorithm.Serpent256, "Cipher algorithm 'serpent-256' is not supported by Block")]
    [InlineData(CryptoCipherAlgorithm.Twofish128, "Cipher algorithm 'twofish-128' is not supported by Block")]
    public void Unimplemented_algorithms_are_refused_by_name(CryptoCipherAlgorithm alg, string message)
    {
        var e = Assert.Throws<BlockException>(() => SectorCipher.Create(new CipherSuite(alg, CryptoCipherMode.Xts, CryptoIvGenAlgorithm.Plain64), new byte[64]));
        Assert.Equal(Errno.ENOTSUP, e.Errno);
        Assert.Equal(message, e.Message);
    }

    [Fact]
    public void Lengths_that_are_not_whole_blocks_are_refused()
    {
        using var cipher = SectorCipher.Create(CipherSuite.Default, new byte[64]);
        Assert.Throws<ArgumentException>(() => cipher.Encrypt(new byte[100], 0));
    }
}
