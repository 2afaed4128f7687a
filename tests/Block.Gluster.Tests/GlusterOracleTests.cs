using Block.TestSupport;

namespace Block.Gluster.Tests;

/// <summary>
/// blk and qemu-img/qemu-io 7.2 on the same images of a throwaway one-brick volume, over <c>gluster://</c>. Each
/// qemu-img run over gluster costs libgfapi 10.3's 10 s close, so a test runs its qemu-img commands at once.
/// </summary>
[Collection(GlusterServerCollection.Name)]
public sealed class GlusterOracleTests(GlusterServer server)
{
    private static void AssertOk(ProcessResult r, string what) =>
        Assert.True(r.ExitCode == 0, $"{what} failed ({r.ExitCode}): {r.Stdout}{r.Stderr}");

    private static void AssertPatternsHeld(ProcessResult r) =>
        Assert.True(r.ExitCode == 0 && !r.Stdout.Contains("Pattern verification failed", StringComparison.Ordinal), r.Stdout + r.Stderr);

    [Theory]
    [InlineData("raw")]
    [InlineData("qcow2")]
    public void Info_over_gluster_matches_qemu_img(string format)
    {
        string name = GlusterServer.NewName(format);
        TestSupport.QemuImg.Create(format, server.File(name), "64M");
        TestSupport.QemuIo.RunChecked(server.File(name), format, "write -P 0x11 1M 3M");
        string url = GlusterServer.Url(name);
        string[] outputs = ["--output=json", "--output=human"];
        var theirs = server.QemuImgAll([.. outputs.Select(o => new[] { "info", o, url })]);
        for (int i = 0; i < outputs.Length; i++)
        {
            var ours = server.Blk("info", outputs[i], url);
            AssertOk(theirs[i], "qemu-img info");
            AssertOk(ours, "blk info");
            Assert.Equal(theirs[i].Stdout, ours.Stdout);
        }
    }

    [Fact]
    public void Map_over_gluster_matches_qemu_img()
    {
        string name = GlusterServer.NewName("qcow2"), raw = GlusterServer.NewName("raw");
        TestSupport.QemuImg.Create("qcow2", server.File(name), "16M");
        TestSupport.QemuIo.RunChecked(server.File(name), "qcow2", "write -P 0x22 0 64k", "write -z 2M 1M", "write -P 0x33 9M 3M");
        TestSupport.QemuImg.Create("raw", server.File(raw), "4M");
        TestSupport.QemuIo.RunChecked(server.File(raw), "raw", "write -P 0x44 1M 512k");
        string[][] commands =
        [
            ["map", "--output=json", GlusterServer.Url(name)],
            ["map", "--output=human", GlusterServer.Url(name)],
            ["map", "--output=json", "-f", "raw", GlusterServer.Url(raw)],
        ];
        var theirs = server.QemuImgAll(commands);
        for (int i = 0; i < commands.Length; i++)
        {
            var ours = server.Blk(commands[i]);
            AssertOk(theirs[i], "qemu-img map");
            AssertOk(ours, "blk map");
            Assert.Equal(theirs[i].Stdout, ours.Stdout);
        }
    }

    [Fact]
    public void Convert_to_gluster_and_back_gives_images_qemu_img_finds_identical()
    {
        using var local = new TempDirectory();
        string source = local.File("source.qcow2");
        TestSupport.QemuImg.Create("qcow2", source, "32M");
        TestSupport.QemuIo.RunChecked(source, "qcow2", "write -P 0x77 1M 3M", "write -P 0x99 20M 64k");

        string[] formats = ["raw", "qcow2"];
        var theirNames = formats.Select(GlusterServer.NewName).ToArray();
        var theirs = server.QemuImgAll([.. formats.Select((f, i) => new[] { "convert", "-O", f, source, GlusterServer.Url(theirNames[i]) })]);
        for (int i = 0; i < formats.Length; i++)
        {
            string format = formats[i];
            AssertOk(theirs[i], "qemu-img convert up");
            string remote = GlusterServer.NewName(format);
            AssertOk(server.Blk("convert", "-O", format, source, GlusterServer.Url(remote)), "blk convert up");
            Assert.Equal(0, TestSupport.QemuImg.Compare(source, server.File(remote), "qcow2", format));
            if (format == "qcow2")
                AssertOk(TestSupport.QemuImg.Check(server.File(remote), "qcow2"), "qemu-img check");
            Assert.Equal(System.IO.File.ReadAllBytes(server.File(theirNames[i])), System.IO.File.ReadAllBytes(server.File(remote)));

            string back = local.File($"back-{format}.qcow2");
            AssertOk(server.Blk("convert", "-f", format, "-O", "qcow2", GlusterServer.Url(remote), back), "blk convert down");
            AssertOk(TestSupport.QemuImg.Check(back, "qcow2"), "qemu-img check");
            Assert.Equal(0, TestSupport.QemuImg.Compare(back, source, "qcow2", "qcow2"));
        }
    }

    [Fact]
    public void Compare_over_gluster_gives_qemu_imgs_verdicts()
    {
        string a = GlusterServer.NewName("qcow2"), same = GlusterServer.NewName("raw"), different = GlusterServer.NewName("raw");
        TestSupport.QemuImg.Create("qcow2", server.File(a), "8M");
        TestSupport.QemuIo.RunChecked(server.File(a), "qcow2", "write -P 0x44 1M 64k");
        foreach (var b in new[] { same, different })
        {
            TestSupport.QemuImg.Create("raw", server.File(b), "8M");
            TestSupport.QemuIo.RunChecked(server.File(b), "raw", "write -P 0x44 1M 64k");
        }
        TestSupport.QemuIo.RunChecked(server.File(different), "raw", "write -P 0x45 5M 512");
        string[][] commands =
        [
            ["compare", "-f", "qcow2", "-F", "raw", GlusterServer.Url(a), GlusterServer.Url(same)],
            ["compare", "-f", "qcow2", "-F", "raw", GlusterServer.Url(a), GlusterServer.Url(different)],
        ];
        var theirs = server.QemuImgAll(commands);
        for (int i = 0; i < commands.Length; i++)
        {
            var ours = server.Blk(commands[i]);
            Assert.Equal(theirs[i].ExitCode, ours.ExitCode);
            Assert.Equal(theirs[i].Stdout, ours.Stdout);
        }
    }

    [Fact]
    public void Blk_reads_what_qemu_io_wrote_over_gluster_and_qemu_io_reads_what_blk_wrote()
    {
        string name = GlusterServer.NewName("raw");
        TestSupport.QemuImg.Create("raw", server.File(name), "8M");
        string url = GlusterServer.Url(name);
        AssertOk(server.QemuIo(url, "raw", "write -P 0x5a 0 1M", "write -P 0x33 3M 512"), "qemu-io write");
        AssertPatternsHeld(server.Blk("io", "-f", "raw", "-c", "read -P 0x5a 0 1M", "-c", "read -P 0x33 3M 512", "-c", "read -P 0 1M 2M", url));
        AssertOk(server.Blk("io", "-f", "raw", "-c", "write -P 0xc3 4M 1M", "-c", "write -z 6M 64k", "-c", "discard 7M 64k", "-c", "flush", url), "blk io write");
        AssertPatternsHeld(server.QemuIo(url, "raw", "read -P 0xc3 4M 1M", "read -P 0 6M 64k", "read -P 0 7M 64k", "read -P 0x5a 0 1M"));
    }

    [Theory]
    [InlineData("qcow2", "off")]
    [InlineData("raw", "off")]
    [InlineData("raw", "full")]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public void Create_over_gluster_gives_what_qemu_img_creates_over_gluster(string format, string preallocation)
    {
        string ours = GlusterServer.NewName(format), theirs = GlusterServer.NewName(format);
        string[] options = format == "raw" ? ["-o", $"preallocation={preallocation}"] : [];
        var qemu = server.QemuImgAll(["create", "-f", format, .. options, GlusterServer.Url(theirs), "4M"]);
        AssertOk(qemu[0], "qemu-img create");
        AssertOk(server.Blk(["create", "-f", format, .. options, GlusterServer.Url(ours), "4M"]), "blk create");
        Assert.Equal(System.IO.File.ReadAllBytes(server.File(theirs)), System.IO.File.ReadAllBytes(server.File(ours)));
        Assert.Equal(new FileInfo(server.File(theirs)).Length, new FileInfo(server.File(ours)).Length);
        Assert.Equal(System.IO.File.GetUnixFileMode(server.File(theirs)), System.IO.File.GetUnixFileMode(server.File(ours)));
        if (preallocation == "full")
            Assert.True(new FileInfo(server.File(ours)).Length <= 4 << 20 && AllocatedBytes(server.File(ours)) >= 4 << 20, "full preallocation left holes");
    }

    private static long AllocatedBytes(string path) =>
        long.Parse(ProcessRunner.Run("stat", ["-c", "%b", path]).Stdout.Trim(), System.Globalization.CultureInfo.InvariantCulture) * 512;

    [Fact]
    public void Resize_over_gluster_grows_and_shrinks_as_qemu_img_does()
    {
        string ours = GlusterServer.NewName("raw"), theirs = GlusterServer.NewName("raw");
        TestSupport.QemuImg.Create("raw", server.File(ours), "1M");
        TestSupport.QemuImg.Create("raw", server.File(theirs), "1M");
        var theirsGrow = server.QemuImgAll(["resize", "-f", "raw", GlusterServer.Url(theirs), "3M"])[0];
        var oursGrow = server.Blk("resize", "-f", "raw", GlusterServer.Url(ours), "3M");
        Assert.Equal(theirsGrow.ExitCode, oursGrow.ExitCode);
        Assert.Equal(BlkRunner.Normalize(theirsGrow.Stdout), oursGrow.Stdout);
        Assert.Equal(3L << 20, new FileInfo(server.File(ours)).Length);
        AssertOk(server.Blk("resize", "-f", "raw", "--shrink", GlusterServer.Url(ours), "2M"), "blk resize --shrink");
        Assert.Equal(2L << 20, new FileInfo(server.File(ours)).Length);
    }

    [Theory]
    [InlineData("gluster://127.0.0.2/vol0")]
    [InlineData("gluster+unix://127.0.0.2/vol0/a.raw?socket=/x")]
    [InlineData("gluster+unix:///vol0/a.raw")]
    [InlineData("gluster://127.0.0.2/vol0/a.raw?socket=/x")]
    public void Bad_urls_are_refused_with_qemus_message(string url)
    {
        var theirs = server.QemuImg("info", url);
        var ours = server.Blk("info", url);
        Assert.NotEqual(0, theirs.ExitCode);
        Assert.Equal(theirs.ExitCode, ours.ExitCode);
        Assert.Equal(BlkRunner.Normalize(theirs.Stderr), ours.Stderr);
    }

    [Fact]
    public void A_missing_file_a_missing_volume_and_no_server_are_refused_with_qemus_message()
    {
        string[] urls = [GlusterServer.Url("absent.raw"), "gluster://127.0.0.2/novolume/a.raw", "gluster://127.0.0.9/vol0/a.raw"];
        var theirs = server.QemuImgAll([.. urls.Select(u => new[] { "info", u })]);
        for (int i = 0; i < urls.Length; i++)
        {
            var ours = server.Blk("info", urls[i]);
            Assert.NotEqual(0, ours.ExitCode);
            Assert.Equal(theirs[i].ExitCode, ours.ExitCode);
            Assert.Equal(BlkRunner.Normalize(theirs[i].Stderr), ours.Stderr);
        }
    }
}
