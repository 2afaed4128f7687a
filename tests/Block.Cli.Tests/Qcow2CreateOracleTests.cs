using Block.TestSupport;

namespace Block.Cli.Tests;

/// <summary><c>blk create -f qcow2</c> says what <c>qemu-img create -f qcow2</c> says and writes an image QEMU sees the same way.</summary>
public class Qcow2CreateOracleTests
{
    [Theory]
    [InlineData("0")]
    [InlineData("1000")]
    [InlineData("64M")]
    [InlineData("1G")]
    [InlineData("1T")]
    public void Default_images_are_byte_identical_to_qemu_img(string size)
    {
        using var s = new SideBySide();
        s.AssertSameImg("create", "-f", "qcow2", "@x.qcow2", size);
        s.AssertSameBytes("x.qcow2");
    }

    /// <summary>Every option: the "Formatting" line, then an image QEMU checks clean and describes alike.</summary>
    [Theory]
    [InlineData("compat=0.10")]
    [InlineData("compat=1.1")]
    [InlineData("compat=v2")]
    [InlineData("compat=v3")]
    [InlineData("cluster_size=512")]
    [InlineData("cluster_size=4k")]
    [InlineData("cluster_size=8k")]
    [InlineData("cluster_size=2M")]
    [InlineData("cluster_size=0x1000")]
    [InlineData("refcount_bits=1")]
    [InlineData("refcount_bits=64")]
    [InlineData("refcount_bits=010")]
    [InlineData("refcount_bits=0x20")]
    [InlineData("lazy_refcounts=on")]
    [InlineData("lazy_refcounts=off")]
    [InlineData("preallocation=off")]
    [InlineData("preallocation=metadata")]
    [InlineData("extended_l2=on")]
    [InlineData("extended_l2=y")]
    [InlineData("extended_l2=on,cluster_size=16k")]
    [InlineData("extended_l2=on,preallocation=metadata")]
    [InlineData("compression_type=zlib")]
    [InlineData("compression_type=zstd")]
    [InlineData("data_file=@x.data")]
    [InlineData("data_file=@x.data,data_file_raw=on")]
    [InlineData("data_file=@x.data,preallocation=metadata")]
    [InlineData("compat=0.10,cluster_size=1k,refcount_bits=16")]
    public void Options_format_and_create_as_qemu_img_does(string options)
    {
        using var s = new SideBySide();
        s.AssertSameImg("create", "-f", "qcow2", "-o", options, "@x.qcow2", "3M");
        s.AssertSameBytes("x.qcow2");
        s.AssertSameBytes("x.data");
        s.AssertOracleSeesSameImage("x.qcow2");
    }

    /// <summary>falloc and full place the refcount table differently from QEMU (see the report), so only QEMU's view is compared.</summary>
    [Theory]
    [InlineData("preallocation=falloc")]
    [InlineData("preallocation=full")]
    [InlineData("preallocation=full,extended_l2=on")]
    [InlineData("preallocation=falloc,data_file=@x.data")]
    public void Allocating_preallocation_gives_an_image_qemu_sees_the_same(string options)
    {
        using var s = new SideBySide();
        s.AssertSameImg("create", "-f", "qcow2", "-o", options, "@x.qcow2", "1000k");
        s.AssertOracleSeesSameImage("x.qcow2");
        var map = s.Oracle("map", "--output=json", "@x.qcow2");
        SideBySide.AssertSame(map);
        Assert.Equal(new FileInfo(s.Qemu("x.data")).Exists ? new FileInfo(s.Qemu("x.data")).Length : 0,
            new FileInfo(s.Blk("x.data")).Exists ? new FileInfo(s.Blk("x.data")).Length : 0);
    }

    [Theory]
    [InlineData("compat=bogus")]
    [InlineData("compat=1.0")]
    [InlineData("compat=")]
    [InlineData("cluster_size=256")]
    [InlineData("cluster_size=3000")]
    [InlineData("cluster_size=4M")]
    [InlineData("cluster_size=abc")]
    [InlineData("cluster_size=64kk")]
    [InlineData("refcount_bits=3")]
    [InlineData("refcount_bits=128")]
    [InlineData("refcount_bits=0")]
    [InlineData("refcount_bits=-1")]
    [InlineData("refcount_bits=abc")]
    [InlineData("refcount_bits=16k")]
    [InlineData("refcount_bits=08")]
    [InlineData("refcount_bits=99999999999999999999")]
    [InlineData("refcount_bits=8,compat=0.10")]
    [InlineData("lazy_refcounts=bogus")]
    [InlineData("lazy_refcounts=ON")]
    [InlineData("lazy_refcounts=on,compat=0.10")]
    [InlineData("preallocation=bogus")]
    [InlineData("preallocation=Off")]
    [InlineData("extended_l2=on,cluster_size=4k")]
    [InlineData("compression_type=bogus")]
    [InlineData("compression_type=zstd,compat=0.10")]
    [InlineData("data_file_raw=on")]
    [InlineData("data_file_raw=1")]
    [InlineData("data_file=@x.data,compat=0.10")]
    [InlineData("size=abc")]
    [InlineData("size=16E")]
    [InlineData("bogus=1")]
    public void Invalid_option_values_fail_as_in_qemu_img(string options)
    {
        using var s = new SideBySide();
        s.AssertSameImg("create", "-f", "qcow2", "-o", options, "@x.qcow2", "1M");
        Assert.Equal(File.Exists(s.Qemu("x.qcow2")), File.Exists(s.Blk("x.qcow2")));
    }

    [Theory]
    [InlineData("1T", "cluster_size=512")]
    [InlineData("7E", "cluster_size=64k")]
    [InlineData("1P", "cluster_size=16k,extended_l2=on")]
    public void Sizes_the_l1_table_cannot_map_fail_as_in_qemu_img(string size, string options)
    {
        using var s = new SideBySide();
        s.AssertSameImg("create", "-f", "qcow2", "-o", options, "@x.qcow2", size);
    }

    [Theory]
    [InlineData("-b", "base.qcow2", "-F", "qcow2")]
    [InlineData("-b", "base.raw", "-F", "raw")]
    [InlineData("-b", "base.qcow2", "-F", "raw")]
    [InlineData("-o", "backing_file=base.qcow2,backing_fmt=qcow2")]
    [InlineData("-b", "base.qcow2", "-F", "qcow2", "-o", "compat=0.10")]
    [InlineData("-b", "base.qcow2", "-F", "qcow2", "-o", "data_file=@x.data")]
    [InlineData("-b", "base.qcow2", "-F", "qcow2", "-o", "extended_l2=on,preallocation=metadata")]
    public void Backing_files_give_the_size_and_are_recorded_as_qemu_img_does(params string[] args)
    {
        using var s = new SideBySide();
        s.InBoth(PrepareBackingFiles);
        s.AssertSameImg(["create", "-f", "qcow2", .. args, "@x.qcow2"]);
        s.AssertSameBytes("x.qcow2");
        s.AssertOracleSeesSameImage("x.qcow2");
    }

    [Fact]
    public void A_backing_file_with_an_explicit_size_is_byte_identical()
    {
        using var s = new SideBySide();
        s.InBoth(PrepareBackingFiles);
        s.AssertSameImg("create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "@x.qcow2", "128M");
        s.AssertSameBytes("x.qcow2");
    }

    [Fact]
    public void Relative_backing_names_resolve_against_the_new_image_directory()
    {
        using var s = new SideBySide();
        s.InBoth(d =>
        {
            PrepareBackingFiles(d);
            Directory.CreateDirectory(d.File("sub"));
        });
        s.AssertSameImg("create", "-f", "qcow2", "-b", "../base.qcow2", "-F", "qcow2", "@sub/x.qcow2");
        s.AssertSameBytes("sub/x.qcow2");
        s.AssertSameImg("create", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", "@sub/y.qcow2");
        s.AssertSameImg("info", "@sub/x.qcow2");
    }

    [Theory]
    [InlineData("-b", "base.qcow2", "@x.qcow2")]
    [InlineData("-b", "base.raw", "@x.qcow2")]
    [InlineData("-b", "missing.qcow2", "@x.qcow2")]
    [InlineData("-b", "missing.qcow2", "-F", "qcow2", "@x.qcow2")]
    [InlineData("-b", "missing.qcow2", "-F", "qcow2", "@x.qcow2", "1M")]
    [InlineData("-u", "-b", "missing.qcow2", "-F", "qcow2", "@x.qcow2")]
    [InlineData("-u", "-b", "missing.qcow2", "-F", "qcow2", "@x.qcow2", "1M")]
    [InlineData("-u", "-b", "base.qcow2", "@x.qcow2", "1M")]
    [InlineData("-b", "base.raw", "-F", "qcow2", "@x.qcow2")]
    [InlineData("-b", "base.qcow2", "-F", "bogus", "@x.qcow2")]
    [InlineData("-b", "@x.qcow2", "-F", "qcow2", "@x.qcow2", "1M")]
    [InlineData("-F", "qcow2", "@x.qcow2", "1M")]
    [InlineData("-o", "backing_fmt=qcow2", "@x.qcow2", "1M")]
    [InlineData("-b", "base.qcow2", "-F", "qcow2", "-o", "preallocation=metadata", "@x.qcow2")]
    [InlineData("-b", "base.qcow2", "-F", "qcow2", "-o", "data_file=@x.data,data_file_raw=on", "@x.qcow2")]
    [InlineData("-b", "base.qcow2", "-F", "qcow2", "-o", "size=1M", "@x.qcow2", "1M")]
    public void Backing_file_errors_match_qemu_img(params string[] args)
    {
        using var s = new SideBySide();
        s.InBoth(PrepareBackingFiles);
        s.AssertSameImg(["create", "-f", "qcow2", .. args]);
        Assert.Equal(File.Exists(s.Qemu("x.qcow2")), File.Exists(s.Blk("x.qcow2")));
    }

    [Fact]
    public void Raw_images_refuse_backing_files_as_qemu_img_does()
    {
        using var s = new SideBySide();
        s.InBoth(PrepareBackingFiles);
        s.AssertSameImg("create", "-f", "raw", "-b", "base.qcow2", "-F", "qcow2", "@x.raw", "1M");
    }

    [Theory]
    [InlineData("3M")]
    [InlineData("1000")]
    public void The_data_file_follows_the_virtual_size_on_create_and_resize(string size)
    {
        using var s = new SideBySide();
        s.AssertSameImg("create", "-q", "-f", "qcow2", "-o", "data_file=@x.data", "@x.qcow2", size);
        Assert.Equal(new FileInfo(s.Qemu("x.data")).Length, new FileInfo(s.Blk("x.data")).Length);
        s.AssertSameImg("resize", "@x.qcow2", "5M");
        Assert.Equal(new FileInfo(s.Qemu("x.data")).Length, new FileInfo(s.Blk("x.data")).Length);
        s.AssertSameImg("resize", "--shrink", "@x.qcow2", "2M");
        Assert.Equal(new FileInfo(s.Qemu("x.data")).Length, new FileInfo(s.Blk("x.data")).Length);
        s.AssertSameBytes("x.qcow2");
    }

    [Fact]
    public void Option_help_lists_what_qemu_img_lists()
    {
        using var s = new SideBySide();
        s.AssertSameImg("create", "-f", "qcow2", "-o", "help");
    }

    private static void PrepareBackingFiles(TempDirectory d)
    {
        QemuImg.Create("qcow2", d.File("base.qcow2"), "64M");
        QemuImg.Create("raw", d.File("base.raw"), "10M");
    }
}
