using Block.TestSupport;

namespace Block.Cli.Tests;

/// <summary>
/// <c>blk convert</c> to and from qcow2 says what qemu-img says and writes the image qemu-img writes: byte for byte.
/// Compressed conversions of a raw file are byte for byte too (the same system zlib, clusters packed as QEMU packs
/// them); for the other compressed cases the contents, the allocation shape and qemu-img check's figures are compared.
/// </summary>
public class Qcow2ConvertOracleTests(Qcow2Sources sources) : IClassFixture<Qcow2Sources>
{
    [Theory]
    [InlineData("-O", "raw", "src.qcow2", "x.raw")]
    [InlineData("-O", "raw", "top.qcow2", "x.raw")]
    [InlineData("-S", "0", "-O", "raw", "src.qcow2", "x.raw")]
    [InlineData("-O", "qcow2", "src.qcow2", "x.qcow2")]
    [InlineData("-O", "qcow2", "top.qcow2", "x.qcow2")]
    [InlineData("-f", "raw", "-O", "qcow2", "src.raw", "x.qcow2")]
    [InlineData("-O", "qcow2", "-o", "cluster_size=4k,compat=0.10", "src.qcow2", "x.qcow2")]
    [InlineData("-O", "qcow2", "-o", "preallocation=metadata", "src.qcow2", "x.qcow2")]
    [InlineData("-O", "qcow2", "-o", "extended_l2=on", "src.qcow2", "x.qcow2")]
    [InlineData("-O", "qcow2", "-S", "0", "src.qcow2", "x.qcow2")]
    [InlineData("-O", "qcow2", "-S", "4k", "-f", "raw", "src.raw", "x.qcow2")]
    [InlineData("-O", "qcow2", "-S", "64k", "-f", "raw", "src.raw", "x.qcow2")]
    [InlineData("-O", "qcow2", "src.qcow2", "top.qcow2", "x.qcow2")]
    public void Conversions_write_the_image_qemu_img_writes(params string[] args)
    {
        using var s = Prepared();
        s.AssertSameImg(["convert", .. Paths(args)]);
        s.AssertSameBytes(args[^1]);
    }

    [Theory]
    [InlineData("-B", "base.qcow2", "-F", "qcow2", "mid.qcow2")]
    [InlineData("-B", "mid.qcow2", "-F", "qcow2", "top.qcow2")]
    [InlineData("-o", "backing_file=base.qcow2,backing_fmt=qcow2", "mid.qcow2")]
    [InlineData("-B", "mid.qcow2", "-F", "qcow2", "-S", "0", "top.qcow2")]
    [InlineData("-B", "base.qcow2", "-F", "qcow2", "-o", "cluster_size=4k", "mid.qcow2")]
    [InlineData("-B", "base.qcow2", "-F", "qcow2", "src.qcow2")]
    public void Backing_files_leave_to_the_backing_file_what_the_source_leaves_to_its_own(params string[] args)
    {
        using var s = Prepared();
        s.AssertSameImg(["convert", "-O", "qcow2", .. Paths(args), "@x.qcow2"]);
        s.AssertSameBytes("x.qcow2");
        SideBySide.AssertSame(s.Oracle("map", "--output=json", "@x.qcow2"));
        Assert.Equal(0, s.Oracle("compare", "@" + args[^1], "@x.qcow2").Blk.ExitCode);
    }

    [Theory]
    [InlineData("src.qcow2")]
    [InlineData("top.qcow2")]
    [InlineData("-f", "raw", "src.raw")]
    [InlineData("-o", "cluster_size=4k", "src.qcow2")]
    [InlineData("-o", "cluster_size=2M", "src.qcow2")]
    [InlineData("-o", "cluster_size=512", "src.qcow2")]
    [InlineData("-o", "compression_type=zstd", "src.qcow2")]
    [InlineData("-B", "mid.qcow2", "-F", "qcow2", "top.qcow2")]
    public void Compressed_conversions_read_back_equal_and_have_qemu_img_shapes(params string[] args)
    {
        using var s = Prepared();
        s.AssertSameImg(["convert", "-c", "-O", "qcow2", .. Paths(args), "@x.qcow2"]);
        Assert.Equal(0, s.Oracle("compare", "-f", args.Contains("raw") ? "raw" : "qcow2", "-F", "qcow2", "@" + args[^1], "@x.qcow2").Blk.ExitCode);
        // The allocation shape (data, zero, compressed) is QEMU's; host offsets of compressed data differ with its size.
        var map = s.Oracle("map", "--output=json", "@x.qcow2");
        Assert.Equal(WithoutOffsets(map.Qemu.Stdout), WithoutOffsets(map.Blk.Stdout));
        var check = s.Oracle("check", "@x.qcow2");
        Assert.Equal(0, check.Blk.ExitCode);
        Assert.Equal(AllocationLine(check.Qemu.Stdout), AllocationLine(check.Blk.Stdout));
    }

    [Theory]
    [InlineData("-c")]
    [InlineData("-c", "-o", "cluster_size=4k")]
    [InlineData("-c", "-m", "1")]
    public void Compressed_conversions_of_text_pack_clusters_across_host_clusters_byte_for_byte_as_qemu_img(params string[] args)
    {
        // Text compresses to about a third of a cluster, so most compressed clusters run on into the next host
        // cluster; random data does not compress (stored whole) and zeroes are skipped. Same zlib, same layout:
        // the files must be identical, sector-rounded end included.
        // 0-1 MiB text, 1-2 MiB random, 2-3 MiB zeroes, 3-6 MiB text (ending in a partly used host cluster).
        var data = new byte[6 << 20];
        var random = new Random(7);
        string[] words = ["block", "layer", "qemu", "qcow2", "cluster", "table", "refcount", "data", "zero"];
        foreach (var (start, end) in new[] { (0, 1 << 20), (3 << 20, 6 << 20) })
        {
            for (int pos = start; pos < end;)
            {
                var word = System.Text.Encoding.ASCII.GetBytes(words[random.Next(words.Length)] + " " + random.Next(100000) + " ");
                int n = Math.Min(word.Length, end - pos);
                word.AsSpan(0, n).CopyTo(data.AsSpan(pos));
                pos += n;
            }
        }
        random.NextBytes(data.AsSpan(1 << 20, 1 << 20));
        using var s = new SideBySide();
        s.InBoth(d => File.WriteAllBytes(d.File("text.raw"), data));
        s.AssertSameImg(["convert", .. args, "-f", "raw", "-O", "qcow2", "@text.raw", "@x.qcow2"]);
        s.AssertSameBytes("x.qcow2");
        Assert.Equal(0, s.Oracle("check", "@x.qcow2").Qemu.ExitCode);
    }

    [Fact]
    public void Compressed_conversions_with_sparse_detection_off_compress_every_cluster()
    {
        using var s = new SideBySide();
        s.InBoth(d =>
        {
            QemuImg.Create("qcow2", d.File("small.qcow2"), "2M");
            QemuIo.RunChecked(d.File("small.qcow2"), "qcow2", "write -P 1 0 64k", "write -z 1M 64k");
        });
        s.AssertSameImg("convert", "-c", "-S", "0", "-O", "qcow2", "@small.qcow2", "@x.qcow2");
        var map = s.Oracle("map", "--output=json", "@x.qcow2");
        SideBySide.AssertSame(map);
        var check = s.Oracle("check", "@x.qcow2");
        Assert.Equal(AllocationLine(check.Qemu.Stdout), AllocationLine(check.Blk.Stdout));
        Assert.Contains("32/32 = 100.00% allocated", check.Blk.Stdout, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("-O", "qcow2", "src.qcow2")]
    [InlineData("-O", "qcow2", "--target-is-zero", "src.qcow2")]
    [InlineData("-O", "qcow2", "top.qcow2")]
    [InlineData("-O", "qcow2", "-c", "src.qcow2")]
    [InlineData("-O", "qcow2", "-f", "raw", "src.raw")]
    public void Converting_into_an_existing_image_with_n_equals_qemu_img(params string[] args)
    {
        using var s = Prepared();
        s.InBoth(d =>
        {
            QemuImg.Create("qcow2", d.File("x.qcow2"), "128M");
            QemuIo.RunChecked(d.File("x.qcow2"), "qcow2", "write -P 5 0 3M", "write -P 5 62M 4M");
        });
        s.AssertSameImg(["convert", "-n", .. Paths(args), "@x.qcow2"]);
        s.AssertSameBytes("x.qcow2");
    }

    [Theory]
    [InlineData("-O", "qcow2", "-B", "base.qcow2", "mid.qcow2", "@x.qcow2")]
    [InlineData("-O", "qcow2", "-o", "backing_file=base.qcow2", "mid.qcow2", "@x.qcow2")]
    [InlineData("-O", "raw", "-B", "base.qcow2", "-F", "qcow2", "mid.qcow2", "@x.raw")]
    [InlineData("-O", "qcow2", "-B", "missing.qcow2", "-F", "qcow2", "mid.qcow2", "@x.qcow2")]
    [InlineData("-O", "qcow2", "-o", "lazy_refcounts=bogus", "src.qcow2", "@x.qcow2")]
    [InlineData("-O", "qcow2", "-o", "cluster_size=abc", "src.qcow2", "@x.qcow2")]
    [InlineData("-O", "qcow2", "-o", "refcount_bits=3", "src.qcow2", "@x.qcow2")]
    [InlineData("-O", "qcow2", "-o", "compat=0.10,lazy_refcounts=on", "src.qcow2", "@x.qcow2")]
    [InlineData("-O", "qcow2", "-o", "bogus=1", "src.qcow2", "@x.qcow2")]
    [InlineData("-c", "-O", "raw", "src.qcow2", "@x.raw")]
    [InlineData("-n", "-O", "qcow2", "src.qcow2", "@small.qcow2")]
    public void Errors_match_qemu_img(params string[] args)
    {
        using var s = Prepared();
        s.InBoth(d => QemuImg.Create("qcow2", d.File("small.qcow2"), "1M"));
        s.AssertSameImg(["convert", .. Paths(args)]);
    }

    [Fact]
    public void Compressing_into_allocated_clusters_fails_as_in_qemu_img()
    {
        using var s = Prepared();
        s.InBoth(d =>
        {
            QemuImg.Create("qcow2", d.File("x.qcow2"), "64M");
            QemuIo.RunChecked(d.File("x.qcow2"), "qcow2", "write -P 5 0 1M");
        });
        s.AssertSameImg("convert", "-n", "-c", "-O", "qcow2", "@src.qcow2", "@x.qcow2");
    }

    private SideBySide Prepared() => sources.CopyToNew();

    private static string[] Paths(string[] args) =>
        [.. args.Select(a => a.EndsWith(".qcow2", StringComparison.Ordinal) || a.EndsWith(".raw", StringComparison.Ordinal)
            ? a.StartsWith('@') || a.Contains('=') ? a : "@" + a
            : a)];

    private static string WithoutOffsets(string mapJson) =>
        System.Text.RegularExpressions.Regex.Replace(mapJson, @", ""offset"": \d+", string.Empty);

    private static string AllocationLine(string checkOutput) =>
        checkOutput.Split('\n').FirstOrDefault(l => l.Contains("allocated", StringComparison.Ordinal)) ?? string.Empty;
}
