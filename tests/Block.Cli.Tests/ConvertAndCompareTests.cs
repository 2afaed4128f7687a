using Block.TestSupport;

namespace Block.Cli.Tests;

/// <summary><c>blk convert</c> keeps content and sparseness as qemu-img does; <c>blk compare</c> agrees with qemu-img compare.</summary>
public class ConvertAndCompareTests
{
    [Theory]
    [InlineData]
    [InlineData("-S", "0")]
    [InlineData("-S", "512")]
    [InlineData("-S", "64k")]
    [InlineData("-W", "-m", "4")]
    [InlineData("-o", "preallocation=full")]
    public void Convert_keeps_content_and_matches_qemu_img_sparseness(params string[] options)
    {
        using var dir = new TempDirectory();
        string source = RawImages.Layout(dir);
        string ours = dir.File("ours.raw"), theirs = dir.File("theirs.raw");
        QemuImg.Run(["convert", "-f", "raw", "-O", "raw", .. options, source, theirs]).EnsureSuccess("qemu-img convert");
        var b = BlkRunner.Run(["convert", "-f", "raw", "-O", "raw", .. options, source, ours]);
        Assert.Equal(0, b.ExitCode);
        Assert.Equal("", b.Stdout + b.Stderr);
        Assert.Equal(0, QemuImg.Compare(source, ours));
        Assert.Equal(QemuImg.MapJsonText(theirs), QemuImg.MapJsonText(ours));
    }

    [Fact]
    public void Convert_onto_an_existing_larger_target_zeroes_the_source_holes_and_keeps_the_rest()
    {
        using var dir = new TempDirectory();
        string source = RawImages.Layout(dir);
        string target = dir.File("t.raw");
        File.WriteAllBytes(target, Patterns.Random(8 << 20, 3));
        var expectedTail = File.ReadAllBytes(target).AsSpan(4 << 20).ToArray();
        Assert.Equal(0, BlkRunner.Run("convert", "-n", "-f", "raw", "-O", "raw", source, target).ExitCode);
        Assert.Equal(0, QemuImg.Run("compare", "-f", "raw", "-F", "raw", source, target).ExitCode is 0 or 1 ? 0 : 2);
        var bytes = File.ReadAllBytes(target);
        Assert.Equal(File.ReadAllBytes(source), bytes.AsSpan(0, 4 << 20).ToArray());
        Assert.Equal(expectedTail, bytes.AsSpan(4 << 20).ToArray());
    }

    [Fact]
    public void Convert_concatenates_several_sources()
    {
        using var dir = new TempDirectory();
        string a = RawImages.Sparse(dir, "a.raw", 1 << 20, 0, 4096, 0x41);
        string b = RawImages.Sparse(dir, "b.raw", 1 << 20, 4096, 4096, 0x42);
        string target = dir.File("t.raw");
        Assert.Equal(0, BlkRunner.Run("convert", "-O", "raw", a, b, target).ExitCode);
        Assert.Equal(2 << 20, new FileInfo(target).Length);
        QemuIo.RunChecked(target, "raw", "read -P 0x41 0 4k", "read -P 0 4k 1020k", "read -P 0 1M 4k", "read -P 0x42 1028k 4k");
    }

    [Fact]
    public void Convert_progress_prints_qemu_img_lines()
    {
        using var dir = new TempDirectory();
        string source = RawImages.Layout(dir);
        var q = QemuImg.Run("convert", "-p", "-f", "raw", "-O", "raw", source, dir.File("q.raw"));
        var b = BlkRunner.Run("convert", "-p", "-f", "raw", "-O", "raw", source, dir.File("b.raw"));
        Assert.Equal(q.Stdout, b.Stdout);
    }

    [Theory]
    [InlineData("-n", "-o", "preallocation=full")]
    [InlineData("-m", "17")]
    [InlineData("-S", "1000")]
    [InlineData("-S", "abc")]
    [InlineData("-c")]
    [InlineData("-O", "bogus")]
    [InlineData("-B", "x")]
    [InlineData("-t", "bogus")]
    public void Convert_errors_match_qemu_img(params string[] options)
    {
        using var dir = new TempDirectory();
        string source = RawImages.Sparse(dir, "s.raw", 1 << 20, 0);
        var q = QemuImg.Run(["convert", "-f", "raw", .. options, source, dir.File("q.raw")]);
        var b = BlkRunner.Run(["convert", "-f", "raw", .. options, source, dir.File("q.raw")]);
        Assert.Equal(q.ExitCode, b.ExitCode);
        Assert.Equal(BlkRunner.Normalize(q.Stderr), b.Stderr);
    }

    [Fact]
    public void Convert_of_an_image_onto_itself_is_refused_by_the_lock_and_loses_nothing()
    {
        using var dir = new TempDirectory();
        string source = RawImages.Sparse(dir, "s.raw", 1 << 20, 0, 4096, 0x5a);
        var b = BlkRunner.Run("convert", "-f", "raw", "-O", "raw", source, source);
        Assert.Equal(1, b.ExitCode);
        Assert.Contains("Failed to get \"write\" lock", b.Stderr);
        QemuIo.RunChecked(source, "raw", "read -P 0x5a 0 4k");
    }

    public static TheoryData<string, string[]> ComparePairs() => new()
    {
        { "identical", [] },
        { "one-byte", [] },
        { "sector", [] },
        { "zeroes-vs-hole", [] },
        { "bigger", [] },
        { "bigger-with-data", [] },
        { "smaller", [] },
        { "identical", ["-s"] },
        { "zeroes-vs-hole", ["-s"] },
        { "bigger", ["-s"] },
        { "one-byte", ["-q"] },
        { "bigger-with-data", ["-p"] },
    };

    [Theory]
    [MemberData(nameof(ComparePairs))]
    public void Compare_verdicts_and_exit_codes_match_qemu_img(string variant, string[] options)
    {
        using var dir = new TempDirectory();
        string a = RawImages.Sparse(dir, "a.raw", 1 << 20, 0, 65536, 0x11);
        string b = dir.File("b.raw");
        File.Copy(a, b);
        switch (variant)
        {
            case "one-byte":
                QemuIo.RunChecked(b, "raw", "write -P 0x22 300000 1");
                break;
            case "sector":
                QemuIo.RunChecked(b, "raw", "write -P 0x22 4096 512");
                break;
            case "zeroes-vs-hole":
                QemuIo.RunChecked(b, "raw", "write -P 0 512k 64k");
                break;
            case "bigger":
                QemuIo.RunChecked(b, "raw", "truncate 2M");
                break;
            case "bigger-with-data":
                QemuIo.RunChecked(b, "raw", "truncate 2M", "write -P 0x33 1500000 1");
                break;
            case "smaller":
                QemuIo.RunChecked(b, "raw", "truncate 512k");
                break;
        }
        var q = QemuImg.Run(["compare", "-f", "raw", "-F", "raw", .. options, a, b]);
        var ours = BlkRunner.Run(["compare", "-f", "raw", "-F", "raw", .. options, a, b]);
        Assert.Equal(q.ExitCode, ours.ExitCode);
        Assert.Equal(q.Stdout, ours.Stdout);
    }

    [Fact]
    public void Compare_of_a_missing_image_exits_2()
    {
        using var dir = new TempDirectory();
        string a = RawImages.Sparse(dir, "a.raw", 1 << 20);
        var ours = BlkRunner.Run("compare", a, dir.File("missing.raw"));
        Assert.Equal(2, ours.ExitCode);
        Assert.Equal($"blk: Could not open '{dir.File("missing.raw")}': Could not open '{dir.File("missing.raw")}': No such file or directory\n", ours.Stderr);
    }
}
