using Block.TestSupport;

namespace Block.Cli.Tests;

/// <summary><c>blk io</c> on qcow2 images prints what qemu-io prints for the same commands and leaves the image qemu-io leaves.</summary>
public class Qcow2IoOracleTests
{
    [Theory]
    [InlineData(null, "write -c -P 0xbb 64k 64k", "map", "alloc 0 4M", "alloc 64k 64k")]
    [InlineData(null, "write -c 1k 4k")]
    [InlineData(null, "write -c 0 4k", "map")]
    [InlineData(null, "write -c 0 64k", "write -c 0 64k")]
    [InlineData(null, "write -c 4M-64k 64k", "alloc 0 4M")]
    [InlineData(null, "write -P 1 0 64k", "write -c 0 64k")]
    [InlineData(null, "write -z 128k 64k", "write -z -u 192k 64k", "map", "alloc 128k 128k")]
    [InlineData(null, "write -P 1 512k 64k", "write -z 512k 64k", "map", "alloc 512k 1k")]
    [InlineData(null, "write -P 1 640k 64k", "write -z -u 640k 64k", "map")]
    [InlineData(null, "write -z 2M 4k", "map")]
    [InlineData(null, "write -z -u 2M 4k", "map")]
    [InlineData(null, "write -P 1 2M 4k", "write -z 2M 4k", "map")]
    [InlineData(null, "write -P 1 0 64k", "write -z 0 64k", "write -z -u 4k 4k", "map")]
    [InlineData(null, "write -z 4M-512 512", "map")]
    [InlineData(null, "write -z -n 2M 4k", "write -P 1 0 64k", "write -z -n 4k 4k")]
    [InlineData(null, "write -P 1 1M 128k", "discard 1M 64k", "discard 1088k 4k", "map", "alloc 1M 128k")]
    [InlineData(null, "write -P 1 0 1M", "discard 0 1M", "map", "alloc 0 1M")]
    [InlineData(null, "write -P 1 0 1M", "discard 4k 64k", "map")]
    [InlineData(null, "write -c 0 64k", "discard 0 64k", "map")]
    [InlineData(null, "write -P 1 0 1M", "write -z -u 0 128k", "alloc 0 1M", "map")]
    [InlineData(null, "info", "length", "truncate 8M", "length", "map")]
    [InlineData(null, "write -P 1 0 1M", "truncate 512k", "map")]
    [InlineData("compat=0.10", "info", "write -P 1 0 64k", "write -z 0 64k", "write -z 2M 4k", "map")]
    [InlineData("compat=0.10", "write -P 1 2M 4k", "write -z 2M 4k", "map")]
    [InlineData("lazy_refcounts=on", "write -P 1 0 1M", "info", "map")]
    [InlineData("extended_l2=on", "write -z 2M 1k", "write -P 1 3M 2k", "write -z 3M 1k", "map", "alloc 3M 64k")]
    [InlineData("extended_l2=on", "write -z 2M 4k", "write -z 2M+4k 100k", "map")]
    [InlineData("cluster_size=4k", "write -z 1000k 100k", "write -c 0 4k", "map")]
    [InlineData("compression_type=zstd", "write -c -P 3 0 64k", "read -P 3 0 64k", "map")]
    public void Commands_print_and_leave_what_qemu_io_does(string? options, params string[] commands)
    {
        using var s = new SideBySide();
        s.InBoth(d => QemuImg.Create("qcow2", d.File("x.qcow2"), "4M", options));
        SideBySide.AssertSame(s.Io([.. commands.SelectMany(c => new[] { "-c", c }), "-f", "qcow2", "@x.qcow2"]));
        s.AssertSameBytes("x.qcow2");
    }

    /// <summary>Several clusters compressed in one request: QEMU compresses them on threads, so only the shapes are compared.</summary>
    [Fact]
    public void Compressed_multi_cluster_writes_give_qemu_io_shapes()
    {
        using var s = new SideBySide();
        s.InBoth(d => QemuImg.Create("qcow2", d.File("x.qcow2"), "4M", "cluster_size=4k"));
        SideBySide.AssertSame(s.Io("-c", "write -c 0 1M", "-c", "discard 0 512k", "-c", "map", "-c", "read -P 0xcd 512k 512k", "-f", "qcow2", "@x.qcow2"));
        SideBySide.AssertSame(s.Oracle("map", "--output=json", "@x.qcow2"));
        var check = s.Oracle("check", "@x.qcow2");
        Assert.Equal(check.Qemu.Stdout.Split('\n')[1], check.Blk.Stdout.Split('\n')[1]);
    }

    [Fact]
    public void Writes_and_zeroes_over_a_backing_chain_equal_qemu_io()
    {
        using var s = new SideBySide();
        s.InBoth(d =>
        {
            Qcow2Images.Chain(d);
            QemuImg.Run("create", "-q", "-f", "qcow2", "-b", "top.qcow2", "-F", "qcow2", d.File("x.qcow2")).EnsureSuccess("qemu-img create");
        });
        SideBySide.AssertSame(s.Io("-c", "write -z 2M 4k", "-c", "write -z 0 4k", "-c", "write -z 512k 4k", "-c", "write -z -u 1M 4k",
            "-c", "discard 1536k 64k", "-c", "write -P 7 3M 4k", "-c", "map", "-c", "alloc 0 4M", "-c", "read -P 0 0 64k", "-f", "qcow2", "@x.qcow2"));
        s.AssertSameBytes("x.qcow2");
        SideBySide.AssertSame(s.Oracle("map", "--output=json", "@x.qcow2"));
    }
}
