using Block.TestSupport;

namespace Block.Cli.Tests;

/// <summary><c>blk compare</c> across qcow2 and raw says what qemu-img compare says, with its exit codes (0 same, 1 different, 2 error).</summary>
public class Qcow2CompareOracleTests(Qcow2Sources sources) : IClassFixture<Qcow2Sources>
{
    [Theory]
    [InlineData("src.qcow2", "src.raw")]
    [InlineData("-f", "qcow2", "-F", "raw", "src.qcow2", "src.raw")]
    [InlineData("src.raw", "src.qcow2")]
    [InlineData("src.qcow2", "copy.qcow2")]
    [InlineData("src.qcow2", "compressed.qcow2")]
    [InlineData("src.qcow2", "changed.qcow2")]
    [InlineData("changed.qcow2", "src.raw")]
    [InlineData("src.qcow2", "big.qcow2")]
    [InlineData("top.qcow2", "mid.qcow2")]
    [InlineData("mid.qcow2", "base.qcow2")]
    [InlineData("-s", "src.qcow2", "copy.qcow2")]
    [InlineData("-s", "src.qcow2", "src.raw")]
    [InlineData("-s", "src.qcow2", "big.qcow2")]
    [InlineData("-q", "src.qcow2", "changed.qcow2")]
    [InlineData("-f", "raw", "src.qcow2", "copy.qcow2")]
    [InlineData("src.qcow2", "missing.qcow2")]
    [InlineData("-F", "qcow2", "src.qcow2", "src.raw")]
    public void Verdicts_and_exit_codes_equal_qemu_img(params string[] args)
    {
        using var s = sources.CopyToNew();
        s.InBoth(d =>
        {
            string src = d.File("src.qcow2");
            QemuImg.Run("convert", "-O", "qcow2", src, d.File("copy.qcow2")).EnsureSuccess("qemu-img convert");
            QemuImg.Run("convert", "-c", "-O", "qcow2", src, d.File("compressed.qcow2")).EnsureSuccess("qemu-img convert");
            File.Copy(d.File("copy.qcow2"), d.File("changed.qcow2"));
            QemuIo.RunChecked(d.File("changed.qcow2"), "qcow2", "write -P 9 3M 512");
            QemuImg.Create("qcow2", d.File("big.qcow2"), "128M");
            QemuImg.Run("convert", "-n", "-O", "qcow2", src, d.File("big.qcow2")).EnsureSuccess("qemu-img convert");
        });
        s.AssertSameImg(["compare", .. args.Select(a => a.Contains('.') ? "@" + a : a)]);
    }
}
