using Block.TestSupport;

namespace Block.Nfs.Tests;

/// <summary>blk and qemu-img/qemu-io 7.2 on the same images on a throwaway ganesha, over <c>nfs://</c>.</summary>
[Collection(NfsServerCollection.Name)]
public sealed class NfsOracleTests(NfsServer server)
{
    private static void AssertOk(ProcessResult r, string what) =>
        Assert.True(r.ExitCode == 0, $"{what} failed ({r.ExitCode}): {r.Stdout}{r.Stderr}");

    private static void AssertPatternsHeld(ProcessResult r) =>
        Assert.True(r.ExitCode == 0 && !r.Stdout.Contains("Pattern verification failed", StringComparison.Ordinal), r.Stdout + r.Stderr);

    [Theory]
    [InlineData("raw", null)]
    [InlineData("qcow2", null)]
    [InlineData("raw", "uid=0&gid=0")]
    public void Info_over_nfs_matches_qemu_img(string format, string? query)
    {
        string name = NfsServer.NewName(format);
        TestSupport.QemuImg.Create(format, server.File(name), "64M");
        TestSupport.QemuIo.RunChecked(server.File(name), format, "write -P 0x11 1M 3M");
        string url = server.Url(name, query);
        foreach (var output in new[] { "--output=json", "--output=human" })
        {
            var theirs = server.QemuImg("info", output, url);
            var ours = server.Blk("info", output, url);
            AssertOk(theirs, "qemu-img info");
            AssertOk(ours, "blk info");
            Assert.Equal(theirs.Stdout, ours.Stdout);
        }
    }

    [Fact]
    public void Map_over_nfs_matches_qemu_img()
    {
        string name = NfsServer.NewName("qcow2");
        TestSupport.QemuImg.Create("qcow2", server.File(name), "16M");
        TestSupport.QemuIo.RunChecked(server.File(name), "qcow2", "write -P 0x22 0 64k", "write -z 2M 1M", "write -P 0x33 9M 3M");
        foreach (var output in new[] { "--output=json", "--output=human" })
        {
            var theirs = server.QemuImg("map", output, server.Url(name));
            var ours = server.Blk("map", output, server.Url(name));
            AssertOk(theirs, "qemu-img map");
            AssertOk(ours, "blk map");
            Assert.Equal(theirs.Stdout, ours.Stdout);
        }
        string raw = NfsServer.NewName("raw");
        TestSupport.QemuImg.Create("raw", server.File(raw), "4M");
        var theirsRaw = server.QemuImg("map", "--output=json", "-f", "raw", server.Url(raw));
        var oursRaw = server.Blk("map", "--output=json", "-f", "raw", server.Url(raw));
        AssertOk(theirsRaw, "qemu-img map raw");
        Assert.Equal(theirsRaw.Stdout, oursRaw.Stdout);
    }

    [Fact]
    public void Convert_to_nfs_and_back_gives_images_qemu_img_finds_identical()
    {
        using var local = new TempDirectory();
        string source = local.File("source.qcow2");
        TestSupport.QemuImg.Create("qcow2", source, "32M");
        TestSupport.QemuIo.RunChecked(source, "qcow2", "write -P 0x77 1M 3M", "write -P 0x99 20M 64k");

        foreach (var format in new[] { "raw", "qcow2" })
        {
            string remote = NfsServer.NewName(format);
            AssertOk(server.Blk("convert", "-O", format, source, server.Url(remote)), "blk convert up");
            AssertOk(server.QemuImg("compare", "-f", "qcow2", "-F", format, source, server.Url(remote)), "qemu-img compare");
            if (format == "qcow2")
                AssertOk(TestSupport.QemuImg.Check(server.File(remote), "qcow2"), "qemu-img check");

            string back = local.File($"back-{format}.qcow2");
            AssertOk(server.Blk("convert", "-f", format, "-O", "qcow2", server.Url(remote), back), "blk convert down");
            AssertOk(TestSupport.QemuImg.Check(back, "qcow2"), "qemu-img check");
            AssertOk(server.QemuImg("compare", "-f", "qcow2", "-F", format, back, server.Url(remote)), "qemu-img compare back");

            string theirs = NfsServer.NewName(format);
            AssertOk(server.QemuImg("convert", "-O", format, source, server.Url(theirs)), "qemu-img convert up");
            Assert.Equal(System.IO.File.ReadAllBytes(server.File(theirs)), System.IO.File.ReadAllBytes(server.File(remote)));
        }
    }

    [Fact]
    public void Compare_over_nfs_gives_qemu_imgs_verdicts()
    {
        string a = NfsServer.NewName("qcow2"), b = NfsServer.NewName("raw");
        TestSupport.QemuImg.Create("qcow2", server.File(a), "8M");
        TestSupport.QemuImg.Create("raw", server.File(b), "8M");
        TestSupport.QemuIo.RunChecked(server.File(a), "qcow2", "write -P 0x44 1M 64k");
        TestSupport.QemuIo.RunChecked(server.File(b), "raw", "write -P 0x44 1M 64k");
        foreach (var change in new[] { (string?)null, "write -P 0x45 5M 512" })
        {
            if (change != null)
                TestSupport.QemuIo.RunChecked(server.File(b), "raw", change);
            var theirs = server.QemuImg("compare", "-f", "qcow2", "-F", "raw", server.Url(a), server.Url(b));
            var ours = server.Blk("compare", "-f", "qcow2", "-F", "raw", server.Url(a), server.Url(b));
            Assert.Equal(theirs.ExitCode, ours.ExitCode);
            Assert.Equal(theirs.Stdout, ours.Stdout);
        }
    }

    [Fact]
    public void Blk_reads_what_qemu_io_wrote_over_nfs_and_qemu_io_reads_what_blk_wrote()
    {
        string name = NfsServer.NewName("raw");
        TestSupport.QemuImg.Create("raw", server.File(name), "8M");
        string url = server.Url(name);
        AssertOk(server.QemuIo(url, "raw", "write -P 0x5a 0 1M", "write -P 0x33 3M 512"), "qemu-io write");
        AssertPatternsHeld(server.Blk("io", "-f", "raw", "-c", "read -P 0x5a 0 1M", "-c", "read -P 0x33 3M 512", "-c", "read -P 0 1M 2M", url));
        AssertOk(server.Blk("io", "-f", "raw", "-c", "write -P 0xc3 4M 1M", "-c", "write -P 0x11 7M 4k", "-c", "flush", url), "blk io write");
        AssertPatternsHeld(server.QemuIo(url, "raw", "read -P 0xc3 4M 1M", "read -P 0x11 7M 4k", "read -P 0x5a 0 1M"));
    }

    [Theory]
    [InlineData("qcow2")]
    [InlineData("raw")]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public void Create_over_nfs_gives_what_qemu_img_creates_over_nfs(string format)
    {
        string ours = NfsServer.NewName(format), theirs = NfsServer.NewName(format);
        AssertOk(server.Blk("create", "-f", format, server.Url(ours), "64M"), "blk create");
        AssertOk(server.QemuImg("create", "-f", format, server.Url(theirs), "64M"), "qemu-img create");
        Assert.Equal(System.IO.File.ReadAllBytes(server.File(theirs)), System.IO.File.ReadAllBytes(server.File(ours)));
        Assert.Equal(new FileInfo(server.File(theirs)).Length, new FileInfo(server.File(ours)).Length);
        Assert.Equal(System.IO.File.GetUnixFileMode(server.File(theirs)), System.IO.File.GetUnixFileMode(server.File(ours)));
    }

    [Fact]
    public void Resize_over_nfs_grows_and_shrinks_as_qemu_img_does()
    {
        string ours = NfsServer.NewName("raw"), theirs = NfsServer.NewName("raw");
        TestSupport.QemuImg.Create("raw", server.File(ours), "1M");
        TestSupport.QemuImg.Create("raw", server.File(theirs), "1M");
        foreach (var (args, size) in new[] { (new[] { "3M" }, 3L << 20), (new[] { "--shrink", "2M" }, 2L << 20) })
        {
            var a = server.Blk(["resize", "-f", "raw", .. args[..^1], server.Url(ours), args[^1]]);
            var b = server.QemuImg(["resize", "-f", "raw", .. args[..^1], server.Url(theirs), args[^1]]);
            Assert.Equal(b.ExitCode, a.ExitCode);
            Assert.Equal(BlkRunner.Normalize(b.Stdout), a.Stdout);
            Assert.Equal(size, new FileInfo(server.File(ours)).Length);
            Assert.Equal(size, new FileInfo(server.File(theirs)).Length);
        }
        var refusal = server.Blk("resize", "-f", "raw", "--preallocation=full", server.Url(ours), "4M");
        var theirsRefusal = server.QemuImg("resize", "-f", "raw", "--preallocation=full", server.Url(theirs), "4M");
        Assert.Equal(theirsRefusal.ExitCode, refusal.ExitCode);
        Assert.Equal(BlkRunner.Normalize(theirsRefusal.Stderr), refusal.Stderr);
    }

    [Theory]
    [InlineData("nfs://127.0.0.1/x/y.raw?colour=blue")]
    [InlineData("nfs://127.0.0.1/x/y.raw?uid")]
    [InlineData("nfs://127.0.0.1/x/y.raw?uid=-1")]
    [InlineData("nfs://127.0.0.1/x/y.raw?debug=abc")]
    [InlineData("nfs:///x/y.raw")]
    [InlineData("nfs://127.0.0.1")]
    public void Bad_urls_are_refused_with_qemus_message(string url)
    {
        var theirs = server.QemuImg("info", url);
        var ours = server.Blk("info", url);
        Assert.NotEqual(0, theirs.ExitCode);
        Assert.Equal(theirs.ExitCode, ours.ExitCode);
        Assert.Equal(BlkRunner.Normalize(theirs.Stderr), ours.Stderr);
    }

    [Fact]
    public void A_missing_file_and_a_missing_export_are_refused_with_qemus_message()
    {
        foreach (var url in new[] { server.Url("absent.raw"), "nfs://127.0.0.1/no/such/export/a.raw" })
        {
            var theirs = server.QemuImg("info", url);
            var ours = server.Blk("info", url);
            Assert.NotEqual(0, ours.ExitCode);
            Assert.Equal(theirs.ExitCode, ours.ExitCode);
            Assert.Equal(BlkRunner.Normalize(theirs.Stderr), ours.Stderr);
        }
    }
}
