using Block.TestSupport;

namespace Block.Cli.Tests;

/// <summary>
/// <c>blk amend</c> says what <c>qemu-img amend</c> says, exits as it does, and leaves the same bytes: each image is made
/// once by QEMU's tools and copied to both sides, then amended by each tool.
/// </summary>
public class AmendOracleTests
{
    /// <summary>Version changes (zero clusters expanded on the way down), lazy refcounts, refcount widths, sizes and data
    /// file settings, on images with every kind of cluster, backing files, snapshots and shared L2 tables.</summary>
    [Theory]
    [InlineData("layout", "compat=0.10")]
    [InlineData("layout", "compat=v2")]
    [InlineData("layout", "compat=1.1")]
    [InlineData("layout", "lazy_refcounts=on")]
    [InlineData("layout", "lazy_refcounts=off")]
    [InlineData("layout", "refcount_bits=8")]
    [InlineData("layout", "refcount_bits=64")]
    [InlineData("layout", "refcount_bits=2")]
    [InlineData("layout", "compat=0.10,compat=1.1")]
    [InlineData("layout-v2", "compat=1.1")]
    [InlineData("layout-v2", "compat=v3,lazy_refcounts=on")]
    [InlineData("layout-v2", "compat=1.1,refcount_bits=2,lazy_refcounts=on")]
    [InlineData("v2", "compat=1.1,lazy_refcounts=on,size=128M")]
    [InlineData("backed", "compat=0.10")]
    [InlineData("backed", "backing_file=base.qcow2,backing_fmt=qcow2")]
    [InlineData("backed", "backing_file=base.qcow2,backing_fmt=qcow2,compat=0.10")]
    [InlineData("snapshot", "compat=0.10")]
    [InlineData("snapshot", "refcount_bits=4")]
    [InlineData("shared", "compat=0.10")]
    [InlineData("shared-nobacking", "compat=0.10")]
    [InlineData("dirty", "compat=0.10")]
    [InlineData("dirty", "lazy_refcounts=off")]
    [InlineData("dirty", "refcount_bits=32")]
    [InlineData("lazy", "compat=0.10")]
    [InlineData("lazy", "lazy_refcounts=off")]
    [InlineData("lazy", "compat=0.10,lazy_refcounts=on")]
    [InlineData("small", "refcount_bits=1")]
    [InlineData("small", "refcount_bits=8")]
    [InlineData("small", "refcount_bits=64")]
    [InlineData("small64", "refcount_bits=2")]
    [InlineData("small64", "refcount_bits=16")]
    [InlineData("snapshot", "refcount_bits=1")]
    [InlineData("refcount8", "refcount_bits=16,compat=0.10")]
    [InlineData("zstd", "compat=0.10")]
    [InlineData("datafile", "data_file=other.raw")]
    [InlineData("datafile", "data_file_raw=off")]
    [InlineData("datafile-raw", "data_file_raw=on")]
    [InlineData("datafile-raw", "data_file_raw=off")]
    [InlineData("layout", "data_file_raw=off")]
    [InlineData("layout", "size=128M")]
    [InlineData("layout", "size=32M")]
    [InlineData("layout", "size=0")]
    [InlineData("layout", "size=1P")]
    [InlineData("layout", "compat=0.10,size=32M")]
    [InlineData("snapshot", "size=128M")]
    public void Amend_leaves_the_image_qemu_img_leaves(string image, string options)
    {
        using var s = Prepared(image);
        int exit = s.AssertSameImg("amend", "-o", options, "@x.qcow2");
        Assert.Equal(0, exit);
        AssertSameFiles(s);
        s.AssertOracleSeesSameImage("x.qcow2");
        // The guest sees what it saw before (a new size or a renamed data file aside).
        if (!options.Contains("size=", StringComparison.Ordinal) && !options.Contains("data_file=", StringComparison.Ordinal))
        {
            var compare = QemuImg.Run(["compare", "-f", "qcow2", "-F", "qcow2", "original.qcow2", "x.qcow2"],
                Path.GetDirectoryName(s.Blk("x.qcow2")));
            Assert.True(compare.ExitCode == 0, compare.Stdout + compare.Stderr);
        }
    }

    /// <summary>An empty data_file drops the name from the header, as QEMU does (the image then opens only with a
    /// data-file option).</summary>
    [Fact]
    public void Empty_data_file_removes_the_name()
    {
        using var s = Prepared("datafile-raw");
        Assert.Equal(0, s.AssertSameImg("amend", "-o", "data_file=", "@x.qcow2"));
        AssertSameFiles(s);
    }

    /// <summary>What QEMU refuses, blk refuses with the same words, and what QEMU changed before refusing blk changed too.</summary>
    [Theory]
    [InlineData("layout", "refcount_bits=1")]
    [InlineData("small64", "refcount_bits=1")]
    [InlineData("layout-v2", "compat=1.1,refcount_bits=1,lazy_refcounts=on")]
    [InlineData("layout", "compat=bogus")]
    [InlineData("layout", "compat=1.1,,x")]
    [InlineData("layout", "compat")]
    [InlineData("layout", "refcount_bits=3")]
    [InlineData("layout", "refcount_bits=0")]
    [InlineData("layout", "refcount_bits=128")]
    [InlineData("layout", "refcount_bits=-16")]
    [InlineData("layout", "lazy_refcounts=on,compat=0.10")]
    [InlineData("layout", "compat=0.10,refcount_bits=8")]
    [InlineData("layout", "size=1000")]
    [InlineData("layout", "size=9E")]
    [InlineData("layout", "backing_file=x")]
    [InlineData("layout", "backing_file=")]
    [InlineData("layout", "backing_fmt=qcow2")]
    [InlineData("layout", "refcount_bits=8,lazy_refcounts=on,backing_file=x")]
    [InlineData("backed", "backing_file=base.qcow2")]
    [InlineData("backed", "backing_fmt=qcow2")]
    [InlineData("backed", "backing_file=other.qcow2,backing_fmt=qcow2")]
    [InlineData("layout", "data_file=x")]
    [InlineData("layout", "data_file_raw=on")]
    [InlineData("layout", "data_file_raw=on,data_file=x")]
    [InlineData("layout", "encrypt.keyslot=1")]
    [InlineData("layout", "data_file=x,encrypt.new-secret=s")]
    [InlineData("layout", "encrypt.keyslot=1,compat=bogus")]
    [InlineData("layout", "refcount_bits=3,data_file=x")]
    [InlineData("v2", "lazy_refcounts=on")]
    [InlineData("v2", "refcount_bits=8")]
    [InlineData("v2", "compat=1.1,backing_file=x")]
    [InlineData("v2", "compat=1.1,refcount_bits=8,backing_file=x")]
    [InlineData("v2", "compat=1.1,data_file=x")]
    [InlineData("v2-snapshot", "size=128M")]
    [InlineData("refcount8", "compat=0.10")]
    [InlineData("extended", "compat=0.10")]
    [InlineData("zstd-compressed", "compat=0.10")]
    [InlineData("datafile", "compat=0.10")]
    [InlineData("datafile", "compat=0.10,data_file=")]
    [InlineData("datafile", "data_file_raw=on")]
    [InlineData("datafile-raw", "data_file_raw=off,backing_file=x")]
    [InlineData("datafile-raw", "data_file=other.raw,lazy_refcounts=on,compat=0.10")]
    public void Refusals_match_qemu_img(string image, string options)
    {
        using var s = Prepared(image);
        int exit = s.AssertSameImg("amend", "-o", options, "@x.qcow2");
        Assert.Equal(1, exit);
        AssertSameFiles(s);
    }

    /// <summary>Option parsing, help, formats without amendment, open failures: qemu-img's messages and exit codes.</summary>
    [Theory]
    [InlineData("amend")]
    [InlineData("amend", "@x.qcow2")]
    [InlineData("amend", "-o", "help")]
    [InlineData("amend", "-o", "compat=0.10")]
    [InlineData("amend", "-o", "help", "@x.qcow2")]
    [InlineData("amend", "-o", "compat=1.1,help", "@x.qcow2")]
    [InlineData("amend", "-f", "qcow2", "-o", "help")]
    [InlineData("amend", "-f", "raw", "-o", "help")]
    [InlineData("amend", "-f", "vmdk", "-o", "help")]
    [InlineData("amend", "-f", "bogus", "-o", "help")]
    [InlineData("amend", "-o", "help", "@r.raw")]
    [InlineData("amend", "-o", "size=1M", "@r.raw")]
    [InlineData("amend", "-f", "raw", "-o", "size=1M", "@r.raw")]
    [InlineData("amend", "-o", "compat=0.10", "@nonexist.qcow2")]
    [InlineData("amend", "-o", "", "@x.qcow2")]
    [InlineData("amend", "-o", ",", "@x.qcow2")]
    [InlineData("amend", "-o", "a,", "@x.qcow2")]
    [InlineData("amend", "-o", ",compat=1.1", "@x.qcow2")]
    [InlineData("amend", "-o", "compat=1.1", "-o", "compat=0.10", "@x.qcow2")]
    [InlineData("amend", "-o", "foo=bar", "@x.qcow2")]
    [InlineData("amend", "-o", "cluster_size=4k", "@x.qcow2")]
    [InlineData("amend", "-o", "cluster_size=4k,foo=1", "@x.qcow2")]
    [InlineData("amend", "-o", "preallocation=metadata", "@x.qcow2")]
    [InlineData("amend", "-o", "encryption=on", "@x.qcow2")]
    [InlineData("amend", "-o", "extended_l2=on", "@x.qcow2")]
    [InlineData("amend", "-o", "compression_type=zstd", "@x.qcow2")]
    [InlineData("amend", "-o", "lazy_refcounts=maybe", "@x.qcow2")]
    [InlineData("amend", "-o", "refcount_bits=abc", "@x.qcow2")]
    [InlineData("amend", "-o", "size=abc", "@x.qcow2")]
    [InlineData("amend", "-o", "encrypt.iter-time=abc", "@x.qcow2")]
    [InlineData("amend", "-t", "bogus", "-o", "compat=1.1", "@x.qcow2")]
    [InlineData("amend", "-t", "none", "-o", "compat=0.10", "@x.qcow2")]
    [InlineData("amend", "--image-opts", "-f", "qcow2", "-o", "compat=0.10", "@x.qcow2")]
    [InlineData("amend", "--image-opts", "-o", "compat=0.10", "driver=qcow2,file.filename=@x.qcow2")]
    [InlineData("amend", "--image-opts", "-o", "help", "driver=qcow2,file.filename=@x.qcow2")]
    [InlineData("amend", "-o", "compat=1.1", "@x.qcow2", "extra")]
    [InlineData("amend", "-x")]
    [InlineData("amend", "-U", "-o", "compat=1.1", "@x.qcow2")]
    [InlineData("amend", "--force-share", "-o", "compat=1.1", "@x.qcow2")]
    [InlineData("amend", "--force", "-o", "compat=1.1", "@x.qcow2")]
    [InlineData("amend", "-q", "-o", "compat=0.10", "@x.qcow2")]
    public void Command_line_handling_matches_qemu_img(params string[] args)
    {
        using var s = Prepared("layout");
        s.AssertSameImg(args);
        AssertSameFiles(s);
    }

    /// <summary>
    /// <c>-p</c>: the same progress lines, computed alike (single precision, one-point steps, each operation an equal
    /// share: a version change, a refcount width change, or both).
    /// </summary>
    [Theory]
    [InlineData("zeroes4k", "compat=0.10")]
    [InlineData("full4k", "refcount_bits=8")]
    [InlineData("v2-full4k", "compat=1.1,refcount_bits=8")]
    [InlineData("v2-full4k", "compat=1.1")]
    [InlineData("refcount8-zeroes4k", "compat=0.10,refcount_bits=16")]
    [InlineData("shared", "compat=0.10")]
    [InlineData("layout", "lazy_refcounts=on")]
    [InlineData("layout", "foo=bar")]
    [InlineData("layout", "size=1000")]
    [InlineData("layout", "compat=bogus")]
    public void Progress_matches_qemu_img(string image, string options)
    {
        using var s = Prepared(image);
        s.AssertSameImg("amend", "-p", "-o", options, "@x.qcow2");
        AssertSameFiles(s);
    }

    /// <summary>
    /// A preallocated zero cluster that a snapshot shares: QEMU 7.2 zeroes it in place and marks the active entry
    /// COPIED although the cluster has two users, which its own check then reports. blk leaves the flag off: same guest
    /// content and same layout, and a clean check.
    /// </summary>
    [Fact]
    public void Downgrade_leaves_shared_preallocated_zero_clusters_without_copied_flag()
    {
        using var s = Prepared("snapshot-zero-alloc");
        s.AssertSameImg("amend", "-o", "compat=0.10", "@x.qcow2");
        var check = s.Oracle("check", "@x.qcow2");
        Assert.Equal(2, check.Qemu.ExitCode);
        Assert.Equal(0, check.Blk.ExitCode);
        Assert.Equal(0, QemuImg.Compare(s.Qemu("x.qcow2"), s.Blk("x.qcow2"), "qcow2", "qcow2"));
        var map = s.Oracle("map", "--output=json", "@x.qcow2");
        Assert.Equal(map.Qemu.Stdout, map.Blk.Stdout);
        var apply = s.Oracle("snapshot", "-a", "foo", "@x.qcow2");
        Assert.Equal(0, apply.Blk.ExitCode);
        Assert.Equal(0, QemuImg.Compare(s.Qemu("x.qcow2"), s.Blk("x.qcow2"), "qcow2", "qcow2"));
    }

    /// <summary>
    /// zstd-compressed clusters that only a snapshot still uses: QEMU 7.2 looks at the active image only and writes a
    /// version 2 image whose snapshot cannot be read; blk refuses as it does for active ones and changes nothing.
    /// </summary>
    [Fact]
    public void Downgrade_refuses_zstd_clusters_kept_by_a_snapshot()
    {
        using var s = Prepared("zstd-snapshot");
        var r = s.Img("amend", "-o", "compat=0.10", "@x.qcow2");
        Assert.Equal(0, r.Qemu.ExitCode);
        Assert.Equal(1, r.Blk.ExitCode);
        Assert.Equal("blk: Cannot downgrade an image with zstd compression type and existing compressed clusters\n", r.Blk.Stderr);
        Assert.Equal(0, s.Oracle("check", "@x.qcow2").Blk.ExitCode);
        Assert.Equal("1.1", QemuImg.Info(s.Blk("x.qcow2"), "qcow2")["format-specific"]!["data"]!["compat"]!.GetValue<string>());
    }

    private static void AssertSameFiles(SideBySide s)
    {
        foreach (var name in new[] { "x.qcow2", "base.qcow2", "x.raw", "other.raw", "r.raw" })
            s.AssertSameBytes(name);
    }

    /// <summary>Makes image <paramref name="kind"/> as <c>x.qcow2</c> (with its backing or data files) once, and copies it to both sides.</summary>
    private static SideBySide Prepared(string kind)
    {
        using var source = new TempDirectory();
        string x = source.File("x.qcow2");
        switch (kind)
        {
            case "layout":
                Qcow2Images.Layout(x);
                break;
            case "layout-v2":
                Qcow2Images.Layout(x, "compat=0.10");
                break;
            case "v2":
                QemuImg.Create("qcow2", x, "64M", "compat=0.10");
                Io(x, "write -P 0x2a 42M 64k");
                break;
            case "v2-snapshot":
                QemuImg.Create("qcow2", x, "64M", "compat=0.10");
                Io(x, "write -P 1 0 64k");
                Snapshot(x, "foo");
                break;
            case "backed":
                MakeBase(source);
                Overlay(source);
                Io(x, "write -P 5 64k 64k", "write -z 0 64k", "write -z 192k 128k", "write -P 7 1M 64k", "write -z 1M 64k", "write -z 40M 64k");
                break;
            case "snapshot":
                MakeBase(source);
                Overlay(source);
                Io(x, "write -z 0 128k", "write -P 3 512k 64k");
                Snapshot(x, "foo");
                Io(x, "write -P 0x42 512k 64k", "write -z 1M 64k", "write -P 0x43 0 64k");
                break;
            case "snapshot-zero-alloc":
                MakeBase(source);
                Overlay(source);
                Io(x, "write -z 0 128k", "write -P 3 256k 64k", "write -z 256k 64k");
                Snapshot(x, "foo");
                Io(x, "write -P 0x42 512k 64k", "write -z 1M 64k");
                break;
            case "shared":
                MakeBase(source);
                Overlay(source);
                Io(x, "write -z 0 128k", "write -P 3 256k 64k", "write -P 4 512k 64k");
                Snapshot(x, "foo");
                break;
            case "shared-nobacking":
                QemuImg.Create("qcow2", x, "64M");
                Io(x, "write -z 0 128k", "write -P 3 256k 64k", "write -z 256k 64k");
                Snapshot(x, "foo");
                break;
            case "dirty":
                QemuImg.Create("qcow2", x, "64M", "lazy_refcounts=on");
                QemuIo.Run(x, "qcow2", "write -P 0x2a 0 128k", "write -z 256k 64k", "flush", "abort");
                break;
            case "lazy":
                QemuImg.Create("qcow2", x, "64M", "lazy_refcounts=on");
                Io(x, "write -P 0x2a 0 128k", "write -z 256k 64k");
                break;
            case "small":
                QemuImg.Create("qcow2", x, "8M", "cluster_size=512");
                Io(x, "write -P 1 0 3M", "write -P 2 5M 1M", "discard 1M 512k");
                break;
            case "small64":
                QemuImg.Create("qcow2", x, "32M", "cluster_size=512,refcount_bits=64");
                Io(x, "write -P 1 0 20M", "discard 1M 512k");
                Snapshot(x, "foo");
                break;
            case "refcount8":
                QemuImg.Create("qcow2", x, "64M", "refcount_bits=8");
                Io(x, "write -P 1 0 1M", "write -z 2M 1M");
                break;
            case "zstd":
                QemuImg.Create("qcow2", x, "64M", "compression_type=zstd");
                Io(x, "write -P 1 0 1M");
                break;
            case "zstd-compressed":
                QemuImg.Create("qcow2", x, "64M", "compression_type=zstd");
                Io(x, "write -c -P 1 0 64k");
                break;
            case "zstd-snapshot":
                QemuImg.Create("qcow2", x, "64M", "compression_type=zstd");
                Io(x, "write -c -P 1 0 64k");
                Snapshot(x, "foo");
                Io(x, "write -P 2 0 64k");
                break;
            case "extended":
                QemuImg.Create("qcow2", x, "64M", "extended_l2=on");
                Io(x, "write -P 1 0 64k");
                break;
            case "datafile":
            case "datafile-raw":
                // The data file is created relative to the working directory, and found relative to the image.
                QemuImg.Run(["create", "-q", "-f", "qcow2", "-o", $"data_file=x.raw,data_file_raw={(kind == "datafile" ? "off" : "on")}", x, "64M"],
                    source.Path).EnsureSuccess("qemu-img create");
                ProcessRunner.Run(QemuIo.Path, ["-f", "qcow2", "-c", "write -P 1 0 1M", x], workingDirectory: source.Path).EnsureSuccess("qemu-io");
                File.Copy(source.File("x.raw"), source.File("other.raw"));
                break;
            case "zeroes4k":
                QemuImg.Create("qcow2", x, "64M", "cluster_size=4k");
                Io(x, "write -z 0 64M");
                break;
            case "full4k":
                QemuImg.Create("qcow2", x, "64M", "cluster_size=4k");
                Io(x, "write -P 1 0 64M");
                break;
            case "v2-full4k":
                QemuImg.Create("qcow2", x, "16M", "cluster_size=4k,compat=0.10");
                Io(x, "write -P 1 0 16M");
                break;
            case "refcount8-zeroes4k":
                QemuImg.Create("qcow2", x, "16M", "cluster_size=4k,refcount_bits=8");
                Io(x, "write -z 0 16M");
                break;
            default:
                throw new ArgumentException($"No image kind '{kind}'", nameof(kind));
        }
        QemuImg.Create("raw", source.File("r.raw"), "1M");
        File.Copy(x, source.File("original.qcow2"));

        var s = new SideBySide();
        foreach (var path in Directory.GetFiles(source.Path))
        {
            File.Copy(path, s.Qemu(Path.GetFileName(path)));
            File.Copy(path, s.Blk(Path.GetFileName(path)));
        }
        return s;
    }

    private static void MakeBase(TempDirectory dir)
    {
        QemuImg.Create("qcow2", dir.File("base.qcow2"), "64M");
        Io(dir.File("base.qcow2"), "write -P 0x2a 0 256k");
    }

    private static void Overlay(TempDirectory dir) =>
        QemuImg.Run("create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", dir.File("x.qcow2")).EnsureSuccess("qemu-img create");

    private static void Io(string image, params string[] commands) => QemuIo.RunChecked(image, "qcow2", commands);

    private static void Snapshot(string image, string name) =>
        QemuImg.Run("snapshot", "-c", name, image).EnsureSuccess("qemu-img snapshot");
}
