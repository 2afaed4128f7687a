using System.Security.Cryptography;
using System.Text.RegularExpressions;
using Block.TestSupport;

namespace Block.Cli.Tests;

/// <summary>
/// <c>blk</c> on encrypted qcow2 says what qemu-img and qemu-io say: create, info (with and without the key), map, check
/// and convert; the same refusals for bad options and missing or wrong secrets, with nothing created or written.
/// </summary>
/// <remarks>LUKS images differ only in their random key material, UUID and calibrated iteration counts, which the
/// comparisons mask. A LUKS image qemu-img makes costs seconds of PBKDF2 calibration whatever <c>iter-time</c> says, so
/// the encrypted images the tests start from are made once for the class (<see cref="EncryptedImages"/>) and each
/// test gets its own copies, the same bytes on both sides.</remarks>
public partial class Qcow2EncryptionCliTests(Qcow2EncryptionCliTests.EncryptedImages images) : IClassFixture<Qcow2EncryptionCliTests.EncryptedImages>
{
    private const string Secret = "secret,id=sec0,data=abc";

    /// <summary>The encrypted images qemu-img makes for the tests to start from, each made on first use.</summary>
    public sealed class EncryptedImages : IDisposable
    {
        private const string Luks = "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10";
        private readonly TempDirectory _dir = new();
        private readonly Lazy<string> _small, _populated, _overlay;

        public EncryptedImages()
        {
            _small = new(() => Made("x-1m.qcow2", path => QemuImg.Create("qcow2", path, "1M", Luks, Secret)));
            _populated = new(() => Made("x-4m.qcow2", path => QemuImg.Create("qcow2", path, "4M", Luks, Secret)));
            _overlay = new(() => Made("top.qcow2", path =>
            {
                QemuImg.Create("qcow2", _dir.File("base.qcow2"), "2M");
                QemuImg.Run("create", "-q", "-f", "qcow2", "--object", Secret, "-F", "qcow2", "-b", "base.qcow2",
                    "-o", Luks, path).EnsureSuccess("qemu-img create");
            }));
        }

        /// <summary>A 1 MiB encrypted (LUKS) qcow2 image.</summary>
        public string Small => _small.Value;

        /// <summary>A 4 MiB encrypted (LUKS) qcow2 image.</summary>
        public string Populated => _populated.Value;

        /// <summary>An encrypted (LUKS) qcow2 image over <c>base.qcow2</c> (relative, qcow2, 2 MiB).</summary>
        public string Overlay => _overlay.Value;

        private string Made(string name, Action<string> make)
        {
            string path = _dir.File(name);
            make(path);
            return path;
        }

        public void Dispose() => _dir.Dispose();
    }

    private static string Opts(string name) => $"driver=qcow2,file.filename=@{name},encrypt.key-secret=sec0";

    public static TheoryData<string> CreateOptions() =>
    [
        "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10",
        "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10,encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc,encrypt.ivgen-alg=essiv",
        "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10,encrypt.hash-alg=sha512,preallocation=metadata,cluster_size=4k",
        "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10,compat=0.10",
        "encrypt.format=aes,encrypt.key-secret=sec0",
        "encryption=on,encrypt.key-secret=sec0",
    ];

    [Theory]
    [MemberData(nameof(CreateOptions))]
    public void Create_formats_lays_out_and_describes_the_image_as_qemu_img(string options)
    {
        using var s = new SideBySide();
        string[] create = ["create", "-f", "qcow2", "--object", Secret, "-o", options, "@x.qcow2", "16M"];
        var r = s.Img(create);
        SideBySide.AssertSame(r);
        if (!options.Contains("luks", StringComparison.Ordinal))
            s.AssertSameBytes("x.qcow2");
        Assert.Equal(new FileInfo(s.Qemu("x.qcow2")).Length, new FileInfo(s.Blk("x.qcow2")).Length);
        SideBySide.AssertSame(Masked(s.Oracle("check", "--object", Secret, "--image-opts", Opts("x.qcow2"))));
        SideBySide.AssertSame(Masked(s.Oracle("map", "--output=json", "--object", Secret, "--image-opts", Opts("x.qcow2"))));
        foreach (var view in (string[][])[["info"], ["info", "--output=json"]])
        {
            SideBySide.AssertSame(Masked(s.Oracle([.. view, "@x.qcow2"])));
            SideBySide.AssertSame(Masked(s.Img([.. view, "@x.qcow2"])));
            SideBySide.AssertSame(Masked(s.Img([.. view, "--object", Secret, "--image-opts", Opts("x.qcow2")])));
        }
        Assert.Contains("encrypted: yes", s.Img("info", "@x.qcow2").Blk.Stdout);
    }

    public static TheoryData<string> BadCreateOptions() =>
    [
        "encrypt.format=luks",
        "encrypt.format=luks,encrypt.key-secret=nosuch",
        "encrypt.format=bogus,encrypt.key-secret=sec0",
        "encrypt.format=aes,encrypt.key-secret=sec0,encrypt.cipher-alg=aes-128",
        "encrypt.format=aes,encrypt.key-secret=sec0,encrypt.iter-time=10",
        "encrypt.format=aes",
        "encrypt.key-secret=sec0",
        "encryption=on",
        "encryption=on,encrypt.format=luks,encrypt.key-secret=sec0",
        "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.cipher-alg=bogus",
        "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.hash-alg=sha3",
        "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=abc",
        "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.cipher-mode=cbc,encrypt.ivgen-alg=essiv,encrypt.ivgen-hash-alg=sha1",
    ];

    [Theory]
    [MemberData(nameof(BadCreateOptions))]
    public void Bad_encryption_options_are_refused_as_qemu_img_refuses_them_and_no_file_is_made(string options)
    {
        using var s = new SideBySide();
        s.AssertSameImg("create", "-q", "-f", "qcow2", "--object", Secret, "-o", options, "@x.qcow2", "1M");
        Assert.False(File.Exists(s.Qemu("x.qcow2")));
        Assert.False(File.Exists(s.Blk("x.qcow2")));
    }

    public static TheoryData<string[]> BadOpens() =>
    [
        ["@x.qcow2"],
        ["--object", "secret,id=sec0,data=wrong", "--image-opts", Opts("x.qcow2")],
        ["--object", Secret, "--image-opts", "driver=qcow2,file.filename=@x.qcow2,encrypt.key-secret=nosuch"],
        ["--object", Secret, "--image-opts", Opts("x.qcow2") + ",encrypt.format=aes"],
        ["--object", Secret, "--image-opts", Opts("x.qcow2") + ",encrypt.format=bogus"],
        ["--object", Secret, "--image-opts", Opts("x.qcow2") + ",encrypt.cipher-alg=aes-128"],
        ["--object", Secret, "--image-opts", "driver=qcow2,file.filename=@plain.qcow2,encrypt.format=luks"],
    ];

    [Theory]
    [MemberData(nameof(BadOpens))]
    public void Opening_without_the_right_secret_or_options_fails_as_in_qemu_and_writes_nothing(string[] open)
    {
        using var s = new SideBySide();
        s.InBoth(dir =>
        {
            File.Copy(images.Small, dir.File("x.qcow2"));
            QemuImg.Create("qcow2", dir.File("plain.qcow2"), "1M");
        });
        byte[] before = SHA256.HashData(File.ReadAllBytes(s.Blk("x.qcow2")));
        SideBySide.AssertSame(s.Io(["-c", "write -P 0x55 0 64k", .. open]));
        SideBySide.AssertSame(s.Img(["map", .. open]));
        SideBySide.AssertSame(s.Img(["check", .. open]));
        SideBySide.AssertSame(Masked(s.Img(["info", .. open])));
        Assert.Equal(before, SHA256.HashData(File.ReadAllBytes(s.Blk("x.qcow2"))));
    }

    [Fact]
    public void Io_map_and_check_with_the_secret_match_qemu_on_a_populated_image()
    {
        using var s = new SideBySide();
        s.InBoth(dir => File.Copy(images.Populated, dir.File("x.qcow2")));
        SideBySide.AssertSame(s.Io("--object", Secret, "--image-opts", Opts("x.qcow2"),
            "-c", "write -P 0x11 1000 70000", "-c", "write -z 128k 64k", "-c", "write -c -P 0x22 1M 64k", "-c", "read -P 0x11 1000 70000",
            "-c", "read -P 0 0 1000", "-c", "map", "-c", "alloc 0 4M"));
        foreach (var view in (string[][])[["map"], ["map", "--output=json"], ["check"], ["check", "--output=json"]])
            SideBySide.AssertSame(s.Img([.. view, "--object", Secret, "--image-opts", Opts("x.qcow2")]));
    }

    [Fact]
    public void Convert_to_an_encrypted_image_reads_back_as_the_source_in_qemu()
    {
        using var s = new SideBySide();
        s.InBoth(dir =>
        {
            QemuImg.Create("raw", dir.File("src.raw"), "2M");
            QemuIo.RunChecked(dir.File("src.raw"), "raw", "write -P 0x31 0 100k", "write -P 0x32 1M 64k");
        });
        foreach (string prealloc in (string[])["", ",preallocation=metadata"])
        {
            var options = "encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10" + prealloc;
            s.AssertSameImg("convert", "-O", "qcow2", "--object", Secret, "-o", options, "@src.raw", "@x.qcow2");
            SideBySide.AssertSame(s.Oracle("compare", "--object", Secret, "--image-opts", "driver=raw,file.filename=@src.raw", Opts("x.qcow2")));
            Assert.Equal(0, s.Oracle("compare", "--object", Secret, "--image-opts", "driver=raw,file.filename=@src.raw", Opts("x.qcow2")).Blk.ExitCode);
            SideBySide.AssertSame(s.Oracle("map", "--output=json", "--object", Secret, "--image-opts", Opts("x.qcow2")));
            File.Delete(s.Qemu("x.qcow2"));
            File.Delete(s.Blk("x.qcow2"));
        }
        s.AssertSameImg("convert", "-c", "-O", "qcow2", "--object", Secret, "-o", "encrypt.format=luks,encrypt.key-secret=sec0", "@src.raw", "@c.qcow2");
        s.AssertSameImg("convert", "-c", "-O", "qcow2", "-o", "encryption=on", "@src.raw", "@c.qcow2");
        Assert.False(File.Exists(s.Blk("c.qcow2")));
    }

    [Fact]
    public void Chains_with_an_encrypted_image_describe_and_read_as_in_qemu()
    {
        using var s = new SideBySide();
        s.InBoth(dir =>
        {
            QemuImg.Create("qcow2", dir.File("base.qcow2"), "2M");
            QemuIo.RunChecked(dir.File("base.qcow2"), "qcow2", "write -P 0x41 0 1M");
            File.Copy(images.Overlay, dir.File("top.qcow2"));
        });
        SideBySide.AssertSame(Masked(s.Img("info", "--backing-chain", "@top.qcow2")));
        SideBySide.AssertSame(s.Io("--object", Secret, "--image-opts", Opts("top.qcow2"),
            "-c", "write -P 0x42 1000 2000", "-c", "read -P 0x41 0 1000", "-c", "read -P 0x42 1000 2000", "-c", "read -P 0x41 3000 62536",
            "-c", "read -P 0 1M 64k"));
        SideBySide.AssertSame(s.Oracle("compare", "--object", Secret, "--image-opts", Opts("top.qcow2"), "driver=qcow2,file.filename=@base.qcow2"));

        // A plain overlay on an encrypted base: creating and describing it needs no key, as in qemu-img.
        s.AssertSameImg("create", "-f", "qcow2", "-F", "qcow2", "-b", "top.qcow2", "@over.qcow2");
        SideBySide.AssertSame(Masked(s.Img("info", "--backing-chain", "@over.qcow2")));
    }

    /// <summary>Masks what differs between two LUKS volumes: UUIDs, iteration counts and disk usage.</summary>
    private static (ProcessResult Qemu, ProcessResult Blk) Masked((ProcessResult Qemu, ProcessResult Blk) r) => (Mask(r.Qemu), Mask(r.Blk));

    private static ProcessResult Mask(ProcessResult r) => r with { Stdout = Volatile().Replace(r.Stdout, "$1X"), Stderr = Volatile().Replace(r.Stderr, "$1X") };

    [GeneratedRegex(@"((?:uuid|iters|disk size|actual-size)""?: ""?)[^"",\n]+")]
    private static partial Regex Volatile();
}
