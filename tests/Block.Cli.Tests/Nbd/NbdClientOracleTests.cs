using Block.TestSupport;

namespace Block.Cli.Tests.Nbd;

/// <summary>
/// blk's <c>nbd</c> client against servers we did not write (qemu-nbd 7.2, nbdkit): <c>info</c>, <c>map</c>,
/// <c>convert</c>, <c>compare</c> and <c>io</c> on <c>nbd:</c> addresses print what qemu-img and qemu-io print and exit
/// as they exit. Each side has its own server over its own copy of the image, so writes are compared too.
/// </summary>
public sealed class NbdClientOracleTests
{
    private const string Export = "disk";

    /// <summary>The URI of export <see cref="Export"/> on each side's socket (the <c>@</c> is the side's directory).</summary>
    private const string Uri = "nbd+unix:///disk?socket=@srv.sock";

    /// <summary>The default export on each side's socket (nbdkit's).</summary>
    private const string DefaultUri = "nbd+unix://?socket=@srv.sock";

    private static void MakeQcow2(TempDirectory dir)
    {
        string path = dir.File("img.qcow2");
        QemuImg.Create("qcow2", path, "64M");
        QemuIo.RunChecked(path, "qcow2", "write -q -P 0x11 0 1M", "write -q -P 0x22 4M 64k", "write -q -z 8M 1M",
            "write -q -P 0x33 63M 1M");
    }

    private static void MakeRaw(TempDirectory dir)
    {
        string path = dir.File("img.raw");
        QemuImg.Create("raw", path, "16M");
        QemuIo.RunChecked(path, "raw", "write -q -P 0x11 1M 1M", "write -q -P 0x44 9M 4k");
    }

    /// <summary>Starts one server per side, from <paramref name="start"/> given the side's directory.</summary>
    private static (IDisposable Qemu, IDisposable Blk) Servers(SideBySide s, Func<string, IDisposable> start)
    {
        var qemu = start(s.Qemu(string.Empty).TrimEnd('/'));
        try
        {
            return (qemu, start(s.Blk(string.Empty).TrimEnd('/')));
        }
        catch
        {
            qemu.Dispose();
            throw;
        }
    }

    private static IDisposable QemuNbdQcow2(string dir, params string[] extra) =>
        QemuNbd.Start(dir + "/srv.sock", dir + "/img.qcow2", ["-f", "qcow2", "-x", Export, .. extra]);

    [Fact]
    public void Info_and_map_over_qemu_nbd_serving_a_qcow2_are_qemu_imgs()
    {
        using var s = new SideBySide();
        s.InBoth(MakeQcow2);
        var (q, b) = Servers(s, d => QemuNbdQcow2(d));
        using (q)
        using (b)
        {
            s.AssertSameImg("info", Uri);
            s.AssertSameImg("info", "--output=json", Uri);
            s.AssertSameImg("info", "-f", "raw", "nbd:unix:@srv.sock:exportname=disk");
            s.AssertSameImg("map", Uri);
            s.AssertSameImg("map", "--output=json", Uri);
            s.AssertSameImg("map", "--output=json", "-f", "raw", "--start-offset=4M", "--max-length=5M", Uri);
        }
    }

    [Fact]
    public void Convert_from_qemu_nbd_makes_qemu_imgs_image_and_compare_agrees()
    {
        using var s = new SideBySide();
        s.InBoth(MakeQcow2);
        var (q, b) = Servers(s, d => QemuNbdQcow2(d));
        using (q)
        using (b)
        {
            s.AssertSameImg("convert", "-f", "raw", "-O", "qcow2", Uri, "@out.qcow2");
            s.AssertSameImg("convert", "-O", "raw", "-S", "4k", Uri, "@out.raw");
            s.AssertSameImg("compare", "-f", "raw", "-F", "qcow2", Uri, "@out.qcow2");
            s.AssertSameImg("compare", Uri, "@img.qcow2");
            s.AssertSameImg("compare", "-f", "raw", "-F", "raw", Uri, "@out.raw");
        }
        s.AssertSameBytes("out.qcow2");
        s.AssertSameBytes("out.raw");
        s.AssertOracleSeesSameImage("out.qcow2");
    }

    [Fact]
    public void Qemu_io_session_over_qemu_nbd_gives_qemu_ios_answers_and_leaves_the_same_image()
    {
        using var s = new SideBySide();
        s.InBoth(MakeQcow2);
        var (q, b) = Servers(s, d => QemuNbdQcow2(d));
        using (q)
        using (b)
        {
            SideBySide.AssertSame(s.Io("-f", "raw",
                "-c", "read -q -P 0x11 0 1M", "-c", "read -q -P 0x22 4M 64k", "-c", "read -q -P 0 8M 1M",
                "-c", "write -q -P 0x44 2M 128k", "-c", "write -q -f -P 0x45 2M 4k", "-c", "write -q -z 4M 4k",
                "-c", "write -q -z -u 1M 64k", "-c", "discard -q 5M 64k", "-c", "flush", "-c", "read -q -P 0x45 2M 4k",
                "-c", "read -q -P 0x44 2052k 124k", "-c", "read -q -P 0 4M 4k", "-c", "read -q 64M 512",
                "-c", "read -q 63M 2M", "-c", "write -q 63M 2M", "-c", "write -q -z 63M 2M", "-c", "discard -q 63M 2M",
                "-c", "read -q -v 2M 32", "-c", "readv -q -P 0x44 2105344 4k 4k", "-c", "writev -q -P 0x47 6M 512 4k 3584",
                "-c", "read -q -P 0x47 6M 8k", "-c", "write -q -P 0x48 7M 3M", "-c", "read -q -P 0x48 7M 3M",
                "-c", "map", "-c", "alloc 0 64M", Uri));
        }
        Assert.Equal(0, QemuImg.Compare(s.Qemu("img.qcow2"), s.Blk("img.qcow2"), "qcow2", "qcow2"));
        QemuImg.Check(s.Blk("img.qcow2"), "qcow2").EnsureSuccess("qemu-img check");
    }

    [Fact]
    public void Data_written_by_blk_io_through_nbd_reads_back_through_qemu_img()
    {
        using var dir = new TempDirectory();
        MakeQcow2(dir);
        using (QemuNbd.Start(dir.File("srv.sock"), dir.File("img.qcow2"), "-f", "qcow2", "-x", Export))
        {
            var r = BlkRunner.Run("io", "-f", "raw", "-c", "write -q -P 0x5a 3M 1M", "-c", "write -q -z 0 64k",
                "-c", "write -q -P 0x5b 41943552 1k", "-c", "flush", QemuNbd.Uri(dir.File("srv.sock"), Export));
            Assert.Equal(0, r.ExitCode);
        }
        QemuIo.RunChecked(dir.File("img.qcow2"), "qcow2", "read -q -P 0x5a 3M 1M", "read -q -P 0 0 64k",
            "read -q -P 0x11 64k 960k", "read -q -P 0x5b 41943552 1k", "read -q -P 0 40M 512");
        QemuImg.Check(dir.File("img.qcow2"), "qcow2").EnsureSuccess("qemu-img check");
    }

    [Fact]
    public void A_read_only_export_refuses_a_writable_open_and_writes_as_qemu_does()
    {
        using var s = new SideBySide();
        s.InBoth(MakeQcow2);
        var (q, b) = Servers(s, d => QemuNbdQcow2(d, "-r"));
        using (q)
        using (b)
        {
            SideBySide.AssertSame(s.Io("-f", "raw", "-c", "write -q 0 4k", Uri));
            SideBySide.AssertSame(s.Io("-r", "-f", "raw", "-c", "read -q -P 0x11 0 4k", "-c", "write -q 0 4k", Uri));
            s.AssertSameImg("info", Uri);
            s.AssertSameImg("map", "--output=json", Uri);
            s.AssertSameImg("convert", "-O", "qcow2", Uri, "@out.qcow2");
            s.AssertSameImg("convert", "-n", "-O", "raw", "@img.qcow2", Uri);
        }
        s.AssertSameBytes("out.qcow2");
    }

    [Fact]
    public void A_raw_file_served_by_qemu_nbd_maps_and_converts_as_qemu_img_sees_it()
    {
        using var s = new SideBySide();
        s.InBoth(MakeRaw);
        var (q, b) = Servers(s, d => QemuNbd.Start(d + "/srv.sock", d + "/img.raw", "-f", "raw", "-x", Export));
        using (q)
        using (b)
        {
            s.AssertSameImg("map", "--output=json", Uri);
            s.AssertSameImg("convert", "-O", "qcow2", Uri, "@out.qcow2");
            s.AssertSameImg("compare", Uri, "@img.raw");
        }
        s.AssertSameBytes("out.qcow2");
    }

    [Fact]
    public void Nbdkit_memory_and_file_plugins_answer_as_qemu_sees_them()
    {
        using var s = new SideBySide();
        s.InBoth(MakeRaw);
        var (q, b) = Servers(s, d => NbdKit.Start(d + "/srv.sock", "memory", "32M"));
        using (q)
        using (b)
        {
            SideBySide.AssertSame(s.Io("-f", "raw", "-c", "write -q -P 0x11 0 1M", "-c", "write -q -z 8M 1M",
                "-c", "write -q -P 0x22 10M 64k", "-c", "discard -q 10M 32k", "-c", "read -q -P 0 10M 32k",
                "-c", "read -q -P 0x22 10272k 32k", "-c", "write -q -f -P 0x23 20M 4k", "-c", "read -q 32M 512",
                "-c", "map", DefaultUri));
            s.AssertSameImg("map", "--output=json", DefaultUri);
            s.AssertSameImg("info", DefaultUri);
            s.AssertSameImg("convert", "-O", "qcow2", DefaultUri, "@mem.qcow2");
        }
        s.AssertSameBytes("mem.qcow2");

        (q, b) = Servers(s, d => NbdKit.Start(d + "/srv.sock", "file", d + "/img.raw"));
        using (q)
        using (b)
        {
            s.AssertSameImg("map", "--output=json", DefaultUri);
            s.AssertSameImg("convert", "-O", "qcow2", DefaultUri, "@file.qcow2");
            s.AssertSameImg("compare", DefaultUri, "@img.raw");
        }
        s.AssertSameBytes("file.qcow2");
    }

    [Fact]
    public void Errors_injected_by_nbdkits_error_filter_reach_blk_as_they_reach_qemu()
    {
        using var s = new SideBySide();
        s.InBoth(MakeRaw);
        var (q, b) = Servers(s, d => NbdKit.Start(d + "/srv.sock", "--filter=error", "file", d + "/img.raw",
            "error-pread=EIO", "error-pread-rate=100%", "error-pwrite=ENOSPC", "error-pwrite-rate=100%",
            "error-trim=EPERM", "error-trim-rate=100%", "error-zero=EINVAL", "error-zero-rate=100%"));
        using (q)
        using (b)
        {
            SideBySide.AssertSame(s.Io("-f", "raw", "-c", "read -q 0 4k", "-c", "write -q 0 4k", "-c", "write -q -f 0 4k",
                "-c", "discard -q 0 4k", "-c", "write -q -z 0 4k", "-c", "flush", "-c", "read -q 1M 4k", DefaultUri));
            s.AssertSameImg("info", DefaultUri);
            // qemu-img convert reports the failed read of every coroutine whose read was already in flight: one or
            // two lines, as the server's replies race its second read. Both fail on the first chunk with its message.
            var (qemu, blk) = s.Img("convert", "-f", "raw", "-O", "qcow2", DefaultUri, "@out.qcow2");
            Assert.Equal((1, 1), (qemu.ExitCode, blk.ExitCode));
            Assert.Equal(qemu.Stdout, blk.Stdout);
            Assert.Equal("blk: error while reading at byte 0: Input/output error\n", blk.Stderr);
            Assert.StartsWith(blk.Stderr, qemu.Stderr, StringComparison.Ordinal);
            s.AssertSameImg("map", "-f", "raw", DefaultUri);
        }
    }
}
