using System.Security.Cryptography;
using Block.TestSupport;

namespace Block.Crypto.Tests;

/// <summary>
/// <c>blk</c> on LUKS images behaves as qemu-img and qemu-io do: the same refusals with the same messages (and nothing
/// written), the same conversions, maps and resizes.
/// </summary>
public class LuksCliTests
{
    private static string Image(TempDirectory dir, string name = "x.luks", string size = "4M")
    {
        string path = dir.File(name);
        Luks.BlkCreate(path, "", size);
        return path;
    }

    private static void AssertSame(ProcessResult qemu, ProcessResult blk)
    {
        Assert.Equal(BlkRunner.Normalize(qemu.Stderr), BlkRunner.Normalize(blk.Stderr));
        Assert.Equal(BlkRunner.Normalize(qemu.Stdout), BlkRunner.Normalize(blk.Stdout));
        Assert.Equal(qemu.ExitCode, blk.ExitCode);
    }

    public static TheoryData<string> BadCreateOptions() => new()
    {
        "iter-time=10",
        "key-secret=nope",
        "key-secret=s0,cipher-alg=foo",
        "key-secret=s0,hash-alg=sha3",
        "key-secret=s0,ivgen-alg=random",
        "key-secret=s0,cipher-mode=ofb",
        "key-secret=s0,iter-time=abc",
        "key-secret=s0,cipher-alg=aes-256,cipher-mode=cbc,ivgen-alg=essiv,ivgen-hash-alg=sha1",
    };

    [Theory]
    [MemberData(nameof(BadCreateOptions))]
    public void Bad_create_options_are_refused_as_qemu_img_refuses_them_and_no_file_is_made(string options)
    {
        using var dir = new TempDirectory();
        string path = dir.File("e.luks");
        var q = QemuImg.Run("create", "-f", "luks", "--object", Luks.SecretObject, "-o", options, path, "1M");
        Assert.False(File.Exists(path));
        var b = BlkRunner.Run("create", "-f", "luks", "--object", Luks.SecretObject, "-o", options, path, "1M");
        AssertSame(q, b);
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void Create_option_help_lists_qemu_imgs_options()
    {
        AssertSame(QemuImg.Run("create", "-f", "luks", "-o", "help"), BlkRunner.Run("create", "-f", "luks", "-o", "help"));
    }

    public static TheoryData<string[]> BadOpens() => new()
    {
        new[] { "-f", "luks", "IMAGE" },
        new[] { "--object", "secret,id=s0,data=654321", "--image-opts", "driver=luks,key-secret=s0,file.filename=IMAGE" },
        new[] { "--object", "secret,id=s0,data=", "--image-opts", "driver=luks,key-secret=s0,file.filename=IMAGE" },
        new[] { "--object", Luks.SecretObject, "--image-opts", "driver=luks,key-secret=s1,file.filename=IMAGE" },
    };

    [Theory]
    [MemberData(nameof(BadOpens))]
    public void Opening_without_the_right_secret_is_refused_as_qemu_refuses_it_and_nothing_is_written(string[] open)
    {
        using var dir = new TempDirectory();
        string path = Image(dir);
        byte[] before = SHA256.HashData(File.ReadAllBytes(path));
        string[] args = [.. open.Select(a => a.Replace("IMAGE", path, StringComparison.Ordinal))];
        AssertSame(ProcessRunner.Run(QemuIo.Path, ["-c", "write -P 0x55 0 64k", .. args]), BlkRunner.Run(["io", "-c", "write -P 0x55 0 64k", .. args]));
        AssertSame(QemuImg.Run(["map", .. args]), BlkRunner.Run(["map", .. args]));
        Assert.Equal(before, SHA256.HashData(File.ReadAllBytes(path)));
    }

    public static TheoryData<int, string> Damage() => new()
    {
        { 0, "00" },
        { 6, "0002" },
        { 40, "6162636465" },
        { 72, "6d643400" },
        { 108, "00000021" },
        { 164, "00000000" },
        { 208, "12345678" },
        { 212, "00000000" },
        { 252, "00000001" },
        { 248, "00000000" },
        { 248, "00000200" },
        { 300, "00000008" },
        { 104, "00000010" },
        { 4096 + 1000, "ff" },
    };

    [Theory]
    [MemberData(nameof(Damage))]
    public void Damaged_headers_and_key_material_are_refused_with_qemus_message(int offset, string bytes)
    {
        using var dir = new TempDirectory();
        string path = Image(dir);
        using (var f = File.OpenWrite(path))
        {
            f.Position = offset;
            f.Write(Convert.FromHexString(bytes));
        }
        byte[] before = SHA256.HashData(File.ReadAllBytes(path));
        string[] args = ["-c", "write -P 0x55 0 64k", "--object", Luks.SecretObject, "--image-opts", Luks.Opts(path)];
        var q = ProcessRunner.Run(QemuIo.Path, args);
        Assert.StartsWith("qemu-io: can't open", q.Stderr, StringComparison.Ordinal);
        AssertSame(q, BlkRunner.Run(["io", .. args]));
        Assert.Equal(before, SHA256.HashData(File.ReadAllBytes(path)));
    }

    [Fact]
    public void Convert_to_raw_gives_what_qemu_img_convert_gives()
    {
        using var dir = new TempDirectory();
        string path = Image(dir, size: "8M");
        Luks.QemuIo(path, "write -P 0x12 0 1M", "write -z 1M 1M", "write -P 0x34 3M 512", "write -P 0 5M 64k");
        string ours = dir.File("ours.raw"), theirs = dir.File("theirs.raw");
        QemuImg.Run("convert", "--object", Luks.SecretObject, "--image-opts", Luks.Opts(path), "-O", "raw", theirs).EnsureSuccess("qemu-img convert");
        BlkRunner.Run("convert", "--object", Luks.SecretObject, "--image-opts", Luks.Opts(path), "-O", "raw", ours).EnsureSuccess("blk convert");
        Assert.Equal(File.ReadAllBytes(theirs), File.ReadAllBytes(ours));
        Assert.Equal(QemuImg.MapJsonText(theirs), QemuImg.MapJsonText(ours));
    }

    [Fact]
    public void Convert_into_a_new_luks_image_reads_back_identical_in_qemu_img_compare()
    {
        using var dir = new TempDirectory();
        string raw = dir.File("s.raw");
        using (var f = File.Create(raw))
        {
            f.SetLength(6 << 20);
            f.Position = 1 << 20;
            f.Write(Enumerable.Range(0, 100_000).Select(i => (byte)(i * 7)).ToArray());
        }
        string target = dir.File("t.luks");
        BlkRunner.Run("convert", "--object", Luks.SecretObject, "-f", "raw", raw, "-O", "luks", "-o", Luks.CreateOptions(""), target).EnsureSuccess("blk convert");
        // The zero ranges were written too: an unwritten LUKS sector decrypts to noise.
        var compare = QemuImg.Run("compare", "--object", Luks.SecretObject, "--image-opts", $"driver=raw,file.filename={raw}", Luks.Opts(target));
        Assert.Equal("Images are identical.\n", compare.Stdout);
        Assert.Equal(0, compare.ExitCode);
    }

    [Fact]
    public void Map_equals_qemu_img_map()
    {
        using var dir = new TempDirectory();
        string path = Image(dir);
        foreach (var output in new[] { "--output=json", "--output=human" })
        {
            AssertSame(QemuImg.Run("map", output, "--object", Luks.SecretObject, "--image-opts", Luks.Opts(path)),
                BlkRunner.Run("map", output, "--object", Luks.SecretObject, "--image-opts", Luks.Opts(path)));
        }
    }

    [Fact]
    public void Resize_grows_the_payload_and_keeps_the_data()
    {
        using var dir = new TempDirectory();
        string path = Image(dir);
        Luks.BlkIo(path, "write -P 0x66 4128768 64k");
        BlkRunner.Run("resize", "--object", Luks.SecretObject, "--image-opts", Luks.Opts(path), "+1M").EnsureSuccess("blk resize");
        Assert.Equal(2068480 + (5 << 20), new FileInfo(path).Length);
        Luks.QemuIo(path, "read -P 0x66 4128768 64k", "write -P 0x67 5238784 4k", "read -P 0x67 5238784 4k");
        Assert.Equal(QemuImg.InfoJsonText(path, "luks"), BlkRunner.Run("info", "--output=json", "-f", "luks", path).Stdout);
    }
}
