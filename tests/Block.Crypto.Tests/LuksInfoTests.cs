using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Block.TestSupport;

namespace Block.Crypto.Tests;

/// <summary>
/// <c>blk info</c> prints what qemu-img 7.2 prints for LUKS images, human and JSON, byte for byte on the same file;
/// a default <c>blk create -f luks</c> lays out what <c>qemu-img create -f luks</c> does.
/// </summary>
public partial class LuksInfoTests
{
    public static TheoryData<string> Suites() => new()
    {
        "",
        "cipher-alg=aes-256,cipher-mode=cbc,ivgen-alg=essiv,ivgen-hash-alg=sha256,hash-alg=sha512",
        "cipher-alg=aes-128,cipher-mode=ecb,hash-alg=sha1",
    };

    [Theory]
    [MemberData(nameof(Suites))]
    public void Info_equals_qemu_img_on_an_image_qemu_img_made(string suite)
    {
        using var dir = new TempDirectory();
        string path = dir.File("q.luks");
        Luks.QemuCreate(path, suite, "5M");
        AssertInfoSame(path);
    }

    [Theory]
    [MemberData(nameof(Suites))]
    public void Info_equals_qemu_img_on_an_image_blk_made(string suite)
    {
        using var dir = new TempDirectory();
        string path = dir.File("b.luks");
        Luks.BlkCreate(path, suite, "5M");
        AssertInfoSame(path);
    }

    [Fact]
    public void Info_with_image_opts_and_a_key_equals_qemu_img()
    {
        using var dir = new TempDirectory();
        string path = dir.File("b.luks");
        Luks.BlkCreate(path, "", "1M");
        foreach (var output in new[] { "--output=json", "--output=human" })
        {
            var q = QemuImg.Run("info", output, "--object", Luks.SecretObject, "--image-opts", Luks.Opts(path));
            var b = BlkRunner.Run("info", output, "--object", Luks.SecretObject, "--image-opts", Luks.Opts(path));
            Assert.Equal(0, q.ExitCode);
            Assert.Equal(q.Stdout, b.Stdout);
        }
    }

    [Fact]
    public void Default_blk_create_lays_out_what_qemu_img_create_does()
    {
        using var dir = new TempDirectory();
        string ours = dir.File("ours.luks"), theirs = dir.File("theirs.luks");
        Luks.BlkCreate(ours, "", "16M");
        Luks.QemuCreate(theirs, "", "16M");
        Assert.Equal(new FileInfo(theirs).Length, new FileInfo(ours).Length);
        Assert.Equal(18845696, new FileInfo(ours).Length);
        // Everything but the random UUID, salts and digests, and the machine-calibrated iteration counts.
        Assert.Equal(Mask(QemuImg.InfoJsonText(theirs, "luks")), Mask(QemuImg.InfoJsonText(ours, "luks")));
        var a = Cryptsetup.Dump(theirs);
        var b = Cryptsetup.Dump(ours);
        foreach (var key in a.Keys.Where(k => !Random().IsMatch(k)))
            Assert.True(a[key] == b.GetValueOrDefault(key), $"{key}: qemu-img '{a[key]}', blk '{b.GetValueOrDefault(key)}'");
        var info = JsonNode.Parse(QemuImg.InfoJsonText(ours, "luks"))!["format-specific"]!["data"]!;
        Assert.Equal(2068480, (long)info["payload-offset"]!);
    }

    private static void AssertInfoSame(string path)
    {
        foreach (var args in new[] { new[] { "info", path }, ["info", "--output=json", path], ["info", "-f", "luks", path] })
        {
            var q = QemuImg.Run(args);
            var b = BlkRunner.Run(args);
            Assert.Equal(0, q.ExitCode);
            Assert.Equal(q.Stdout, b.Stdout);
            Assert.Equal(q.ExitCode, b.ExitCode);
        }
    }

    private static string Mask(string json) => Variable().Replace(json, "\"$1\": MASKED");

    [GeneratedRegex("\"(uuid|iters|master-key-iters|filename)\": (\"[^\"]*\"|\\d+)")]
    private static partial Regex Variable();

    [GeneratedRegex("UUID|salt|Salt|digest|Iterations|iterations")]
    private static partial Regex Random();
}
