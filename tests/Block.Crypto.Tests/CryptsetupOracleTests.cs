using System.Globalization;
using Block.Crypto.Ciphers;
using Block.Crypto.Luks;
using Block.TestSupport;

namespace Block.Crypto.Tests;

/// <summary>
/// cryptsetup, the reference LUKS implementation, reads the headers and key slots Block writes, and Block opens the
/// volumes cryptsetup formats (including aes-192-cbc, whose key material ends mid-sector and which qemu-img cannot make).
/// </summary>
public class CryptsetupOracleTests
{
    public static TheoryData<string, string, string, int, string> BlkSuites() => new()
    {
        { "", "aes", "xts-plain64", 512, "sha256" },
        { "cipher-alg=aes-128,hash-alg=sha1", "aes", "xts-plain64", 256, "sha1" },
        { "cipher-alg=aes-256,cipher-mode=cbc,ivgen-alg=essiv,hash-alg=sha512", "aes", "cbc-essiv:sha256", 256, "sha512" },
        { "cipher-alg=aes-192,cipher-mode=cbc,ivgen-alg=plain", "aes", "cbc-plain", 192, "sha256" },
    };

    [Theory]
    [MemberData(nameof(BlkSuites))]
    public async Task Cryptsetup_reads_the_header_blk_writes_and_unlocks_its_key_slot(string suite, string cipher, string mode, int bits, string hash)
    {
        using var dir = new TempDirectory();
        string path = dir.File("b.luks");
        Luks.BlkCreate(path, suite, "1M");
        Luks.BlkIo(path, "write -P 0x3c 4096 8192");

        var dump = Cryptsetup.Dump(path);
        Assert.Equal("1", dump["Version"]);
        Assert.Equal(cipher, dump["Cipher name"]);
        Assert.Equal(mode, dump["Cipher mode"]);
        Assert.Equal(hash, dump["Hash spec"]);
        Assert.Equal(bits.ToString(CultureInfo.InvariantCulture), dump["MK bits"]);
        Assert.Equal(LuksLayout.PayloadOffsetSectors(bits / 8).ToString(CultureInfo.InvariantCulture), dump["Payload offset"]);
        Assert.Equal("ENABLED", dump["Key Slot 0"]);
        Assert.Equal("8", dump["Key Slot 0 Key material offset"]);
        Assert.Equal("4000", dump["Key Slot 0 AF stripes"]);
        for (int i = 1; i < 8; i++)
            Assert.Equal("DISABLED", dump[$"Key Slot {i}"]);

        // The master key cryptsetup recovers from our key slot is the one our payload is encrypted with.
        var masterKey = Cryptsetup.DumpMasterKey(path, Luks.Passphrase);
        Assert.Equal(bits / 8, masterKey.Length);
        using var volume = await LuksVolume.OpenAsync(new FileStorage(path), null);
        using var sectors = SectorCipher.Create(volume.Header.Suite, masterKey);
        var data = new byte[8192];
        using (var f = File.OpenRead(path))
        {
            f.Position = volume.PayloadOffset + 4096;
            f.ReadExactly(data);
        }
        sectors.Decrypt(data, 4096 / 512);
        Assert.All(data, b => Assert.Equal(0x3c, b));
    }

    public static TheoryData<string, int, string, bool> CryptsetupSuites() => new()
    {
        { "aes-xts-plain64", 512, "sha256", true },
        { "aes-xts-plain64", 256, "sha1", true },
        { "aes-cbc-essiv:sha256", 256, "sha512", true },
        { "aes-cbc-essiv:sha256", 192, "sha256", false },
        { "aes-cbc-plain64", 128, "sha256", true },
    };

    [Theory]
    [MemberData(nameof(CryptsetupSuites))]
    public async Task Blk_opens_what_cryptsetup_formats(string cipher, int bits, string hash, bool qemuCanRead)
    {
        using var dir = new TempDirectory();
        string path = dir.File("c.luks");
        using (var f = File.Create(path))
            f.SetLength(4 << 20);
        Cryptsetup.Format(path, Luks.Passphrase, cipher, bits, hash);

        var info = BlkRunner.Run("info", "--output=json", path);
        Assert.Equal(0, info.ExitCode);
        Assert.Contains("\"format\": \"luks\"", info.Stdout, StringComparison.Ordinal);
        Luks.BlkIo(path, "write -P 0x6b 0 64k", "write -P 0x6c 1000 100", "read -P 0x6b 0 1000", "read -P 0x6c 1000 100", "read -P 0x6b 1100 64436");
        if (qemuCanRead)
        {
            Luks.QemuIo(path, "read -P 0x6b 0 1000", "read -P 0x6c 1000 100", "read -P 0x6b 1100 64436");
            Assert.Equal(QemuImg.InfoJsonText(path, "luks"), BlkRunner.Run("info", "--output=json", "-f", "luks", path).Stdout);
        }
        var masterKey = Cryptsetup.DumpMasterKey(path, Luks.Passphrase);
        using var volume = await LuksVolume.OpenAsync(new FileStorage(path), null);
        using var sectors = SectorCipher.Create(volume.Header.Suite, masterKey);
        var data = new byte[512];
        using (var f = File.OpenRead(path))
        {
            f.Position = volume.PayloadOffset;
            f.ReadExactly(data);
        }
        sectors.Decrypt(data, 0);
        Assert.All(data, b => Assert.Equal(0x6b, b));
    }

    /// <summary>A LUKS area that is a whole file, read with plain file I/O (no block graph).</summary>
    private sealed class FileStorage(string path) : ILuksStorage
    {
        public long Length => new FileInfo(path).Length;

        public ValueTask InitializeAsync(long length, CancellationToken cancellationToken) => default;

        public ValueTask ReadAsync(long offset, Memory<byte> buffer, CancellationToken cancellationToken)
        {
            using var f = File.OpenRead(path);
            f.Position = offset;
            f.ReadExactly(buffer.Span);
            return default;
        }

        public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, CancellationToken cancellationToken) =>
            throw new NotSupportedException();
    }
}
