using System.Buffers.Binary;
using System.Text;
using Block.Crypto.Ciphers;
using Block.Crypto.Luks;
using Block.Crypto.Qapi;

namespace Block.Crypto.Tests;

/// <summary>The LUKS layer on an in-memory area: create, unlock, refuse, lay out as QEMU does.</summary>
public class LuksVolumeTests
{
    private static readonly byte[] s_passphrase = Encoding.UTF8.GetBytes("123456");

    private static LuksCreateOptions Options(CipherSuite? suite = null, CryptoHashAlgorithm hash = CryptoHashAlgorithm.Sha256) =>
        new() { Suite = suite ?? CipherSuite.Default, Hash = hash, IterTimeMilliseconds = 1 };

    private static async Task<MemoryLuksStorage> CreateAsync(LuksCreateOptions options)
    {
        var storage = new MemoryLuksStorage();
        using var volume = await LuksVolume.CreateAsync(storage, options, s_passphrase);
        return storage;
    }

    public static TheoryData<string, string, CryptoHashAlgorithm> Suites() => new()
    {
        { "aes-256", "xts-plain64", CryptoHashAlgorithm.Sha256 },
        { "aes-128", "xts-plain", CryptoHashAlgorithm.Sha1 },
        { "aes-192", "xts-essiv:sha256", CryptoHashAlgorithm.Sha512 },
        { "aes-256", "cbc-essiv:sha256", CryptoHashAlgorithm.Sha256 },
        { "aes-192", "cbc-plain64", CryptoHashAlgorithm.Sha384 },
        { "aes-128", "ecb-plain64", CryptoHashAlgorithm.Md5 },
    };

    [Theory]
    [MemberData(nameof(Suites))]
    public async Task A_created_volume_unlocks_with_its_passphrase_and_encrypts_as_its_suite(string cipher, string mode, CryptoHashAlgorithm hash)
    {
        var keyBytes = (uint)(int.Parse(cipher[4..]) / 8 * (mode.StartsWith("xts", StringComparison.Ordinal) ? 2 : 1));
        var suite = LuksCipherSpec.Parse(cipher[..3], mode, keyBytes);
        var storage = await CreateAsync(Options(suite, hash));
        using var volume = await LuksVolume.OpenAsync(storage, s_passphrase);
        Assert.True(volume.IsUnlocked);
        Assert.Equal(suite, volume.Header.Suite);
        Assert.Equal(mode, volume.Header.CipherMode);
        Assert.Equal(LuksLayout.PayloadOffsetSectors(suite.KeyLength) * 512L, volume.PayloadOffset);
        var data = new byte[4096];
        new Random(5).NextBytes(data);
        var copy = data.ToArray();
        volume.Cipher!.Encrypt(copy, 77);
        Assert.NotEqual(data, copy);
        volume.Cipher.Decrypt(copy, 77);
        Assert.Equal(data, copy);
    }

    [Fact]
    public async Task Default_layout_is_QEMUs_slot_offsets_and_payload_offset()
    {
        var storage = await CreateAsync(Options());
        using var volume = await LuksVolume.OpenAsync(storage, null);
        Assert.False(volume.IsUnlocked);
        var h = volume.Header;
        Assert.Equal(("aes", "xts-plain64", "sha256", 64u, 4040u), (h.CipherName, h.CipherMode, h.HashSpec, h.KeyBytes, h.PayloadOffsetSectors));
        Assert.Equal([4096L, 262144, 520192, 778240, 1036288, 1294336, 1552384, 1810432], h.Slots.Select(s => s.KeyMaterialOffset));
        Assert.Equal([true, false, false, false, false, false, false, false], h.Slots.Select(s => s.Active));
        Assert.All(h.Slots, s => Assert.Equal(4000u, s.Stripes));
        Assert.True(h.MasterKeyIterations >= 1000 && h.Slots[0].Iterations >= 1000);
        Assert.Equal(2068480, storage.Length);
        Assert.True(Guid.TryParse(h.Uuid, out _));
    }

    [Fact]
    public async Task A_wrong_passphrase_is_refused_and_nothing_is_written()
    {
        var storage = await CreateAsync(Options());
        var before = storage.Bytes.ToArray();
        int writes = storage.Writes;
        var e = await Assert.ThrowsAsync<BlockException>(async () => await LuksVolume.OpenAsync(storage, "12345"u8.ToArray()));
        Assert.Equal("Invalid password, cannot unlock any keyslot", e.Message);
        Assert.Equal(Errno.EACCES, e.Errno);
        Assert.Equal(writes, storage.Writes);
        Assert.Equal(before, storage.Bytes);
    }

    [Fact]
    public async Task Every_active_slot_is_tried()
    {
        var storage = await CreateAsync(Options());
        var bytes = storage.Bytes;
        // Move slot 0's key material and descriptor to slot 5, and leave a decoy in slot 0 whose salt no longer fits.
        var header = LuksHeader.Parse(bytes, bytes.Length);
        int length = header.KeyMaterialLength;
        bytes.AsSpan((int)header.Slots[0].KeyMaterialOffset, length).CopyTo(bytes.AsSpan((int)header.Slots[5].KeyMaterialOffset));
        var slots = header.Slots.ToArray();
        slots[5] = slots[0] with { KeyMaterialOffsetSectors = slots[5].KeyMaterialOffsetSectors };
        slots[0] = slots[0] with { Salt = new byte[32] };
        (header with { Slots = slots }).WriteTo(bytes);
        using var volume = await LuksVolume.OpenAsync(storage, s_passphrase);
        Assert.True(volume.IsUnlocked);
    }

    [Fact]
    public async Task Damaged_key_material_is_refused_like_a_wrong_passphrase()
    {
        var storage = await CreateAsync(Options());
        storage.Bytes[4096 + 1000] ^= 0x40;
        var e = await Assert.ThrowsAsync<BlockException>(async () => await LuksVolume.OpenAsync(storage, s_passphrase));
        Assert.Equal("Invalid password, cannot unlock any keyslot", e.Message);
    }

    [Theory]
    [InlineData(CryptoCipherAlgorithm.Serpent256, CryptoCipherMode.Xts, CryptoHashAlgorithm.Sha256, "Cipher algorithm 'serpent-256' is not supported by Block")]
    [InlineData(CryptoCipherAlgorithm.Aes256, CryptoCipherMode.Ctr, CryptoHashAlgorithm.Sha256, "Cipher mode 'ctr' is not supported by Block")]
    [InlineData(CryptoCipherAlgorithm.Aes256, CryptoCipherMode.Xts, CryptoHashAlgorithm.Ripemd160, "Hash algorithm 'ripemd160' is not supported by Block")]
    public async Task Suites_Block_lacks_are_refused_before_anything_is_written(CryptoCipherAlgorithm alg, CryptoCipherMode mode, CryptoHashAlgorithm hash, string message)
    {
        var storage = new MemoryLuksStorage();
        var e = await Assert.ThrowsAsync<BlockException>(async () =>
            await LuksVolume.CreateAsync(storage, Options(new CipherSuite(alg, mode, CryptoIvGenAlgorithm.Plain64), hash), s_passphrase));
        Assert.Equal(message, e.Message);
        Assert.Equal(0, storage.Writes);
        Assert.Equal(0, storage.Length);
    }

    [Fact]
    public async Task Aes_192_cbc_key_material_that_ends_mid_sector_round_trips()
    {
        // 24 × 4000 = 96000 bytes: 187.5 sectors. QEMU 7.2 asserts on this; cryptsetup makes such volumes.
        var suite = new CipherSuite(CryptoCipherAlgorithm.Aes192, CryptoCipherMode.Cbc, CryptoIvGenAlgorithm.Essiv, CryptoHashAlgorithm.Sha256);
        var storage = await CreateAsync(Options(suite));
        using var volume = await LuksVolume.OpenAsync(storage, s_passphrase);
        Assert.True(volume.IsUnlocked);
        Assert.Equal(8u + 8 * 192, volume.Header.PayloadOffsetSectors);
    }

    [Fact]
    public async Task Header_written_back_is_byte_identical()
    {
        var storage = await CreateAsync(Options());
        var header = LuksHeader.Parse(storage.Bytes, storage.Length);
        var again = new byte[LuksHeader.Size];
        header.WriteTo(again);
        Assert.Equal(storage.Bytes.AsSpan(0, LuksHeader.Size).ToArray(), again);
    }

    public static TheoryData<int, string, string> Damage() => new()
    {
        { 0, "00", "Volume is not in LUKS format" },
        { 6, "0002", "LUKS version 2 is not supported" },
        { 8, "626c6f7766697368", "Algorithm 'blowfish' with key size 32 bytes not supported" },
        { 40, "6162636465", "Unexpected cipher mode string format 'abcdelain64'" },
        { 40, "6f6662", "Cipher mode 'ofb' not supported" },
        { 72, "6d643400", "Hash algorithm 'md4' not supported" },
        { 108, "00000021", "XTS cipher key length should be a multiple of 2" },
        { 108, "00000022", "Algorithm 'aes' with key size 17 bytes not supported" },
        { 164, "00000000", "LUKS key iteration count is zero" },
        { 208, "12345678", "Keyslot 0 state (active/disable) is corrupted" },
        { 212, "00000000", "Keyslot 0 iteration count is zero" },
        { 252, "00000001", "Keyslot 0 is corrupted (stripes 1 != 4000)" },
        { 248, "00000000", "Keyslot 0 is overlapping with the LUKS header" },
        { 248, "00000200", "Keyslots 0 and 1 are overlapping in the header" },
        { 300, "00000008", "Keyslot 1 is corrupted (stripes 8 != 4000)" },
        { 104, "00000010", "Keyslot 0 is overlapping with the encrypted payload" },
        { 8, "6165736165736165736165736165736165736165736165736165736165736165", "LUKS header field cipher_name is not NUL-terminated" },
        { 168, "ff", "LUKS header field uuid is not printable ASCII" },
    };

    [Theory]
    [MemberData(nameof(Damage))]
    public async Task Damaged_headers_are_refused_naming_the_damage(int offset, string bytes, string message)
    {
        var storage = await CreateAsync(Options());
        Hex.Bytes(bytes).CopyTo(storage.Bytes, offset);
        var e = await Assert.ThrowsAsync<ImageFormatException>(async () => await LuksVolume.OpenAsync(storage, s_passphrase));
        Assert.Equal(message, e.Message);
    }

    [Fact]
    public async Task Key_material_past_the_end_of_the_area_is_refused()
    {
        var storage = await CreateAsync(Options());
        var truncated = new MemoryLuksStorage();
        await truncated.InitializeAsync(100_000, default);
        storage.Bytes.AsSpan(0, 100_000).CopyTo(truncated.Bytes);
        var e = await Assert.ThrowsAsync<ImageFormatException>(async () => await LuksVolume.OpenAsync(truncated, s_passphrase));
        Assert.StartsWith("Keyslot 0 key material ends at byte 260096, past the end of the image", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Huge_iteration_counts_are_refused_rather_than_run()
    {
        var storage = await CreateAsync(Options());
        BinaryPrimitives.WriteUInt32BigEndian(storage.Bytes.AsSpan(212), 0xFFFFFFFF);
        var e = await Assert.ThrowsAsync<ImageFormatException>(async () => await LuksVolume.OpenAsync(storage, s_passphrase));
        Assert.Contains("iteration count 4294967295", e.Message, StringComparison.Ordinal);
    }
}
