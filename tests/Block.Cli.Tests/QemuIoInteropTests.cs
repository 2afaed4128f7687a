using Block.TestSupport;

namespace Block.Cli.Tests;

/// <summary>
/// <c>blk io</c> and qemu-io on the same raw images, both ways: what one writes the other reads back with
/// <c>-P</c>, and a script gives the same lines from both (timings aside).
/// </summary>
public class QemuIoInteropTests
{
    private static readonly string[] s_writes =
    [
        "write -P 0xaa 0 64k",
        "write -P 0x11 1 3",
        "write -P 0x22 511 2",
        "write -P 0x33 4095 4097",
        "write -z 128k 64k",
        "write -z -u 192k 64k",
        "writev -P 0x44 300k 512 1k 100",
        "discard 512k 64k",
        "write -P 0x55 1000000 12345",
    ];

    private static readonly string[] s_reads =
    [
        "read -P 0xaa 8k 56k",
        "read -P 0x11 1 3",
        "read -P 0x22 511 2",
        "read -P 0x33 4095 4097",
        "read -P 0 128k 128k",
        "readv -P 0x44 300k 1636",
        "read -P 0 512k 64k",
        "read -P 0x55 1000000 12345",
    ];

    [Theory]
    [InlineData("threads", "writeback")]
    [InlineData("inline", "writethrough")]
    [InlineData("threads", "none")]
    public void What_blk_io_writes_qemu_io_reads_back(string aio, string cache)
    {
        using var dir = new TempDirectory();
        string path = RawImages.Sparse(dir, "a.raw", 2 << 20);
        var b = BlkRunner.Run(["io", "-f", "raw", "-i", aio, "-t", cache, .. s_writes.SelectMany(c => new[] { "-c", c }), path]);
        Assert.Equal("", b.Stderr);
        Assert.Equal(0, b.ExitCode);
        var q = QemuIo.Run(path, "raw", s_reads);
        Assert.Equal(0, q.ExitCode);
        Assert.DoesNotContain("failed", q.Stdout);
    }

    [Fact]
    public void What_qemu_io_writes_blk_io_reads_back()
    {
        using var dir = new TempDirectory();
        string path = RawImages.Sparse(dir, "a.raw", 2 << 20);
        QemuIo.RunChecked(path, "raw", s_writes);
        var b = BlkRunner.Run(["io", "-f", "raw", .. s_reads.SelectMany(c => new[] { "-c", c }), path]);
        Assert.Equal(0, b.ExitCode);
        Assert.DoesNotContain("failed", b.Stdout);
    }

    [Fact]
    public void Pattern_mismatch_is_reported_as_qemu_io_does_and_fails_the_run()
    {
        using var dir = new TempDirectory();
        string path = RawImages.Sparse(dir, "a.raw", 1 << 20, 0, 100, 0x41);
        AssertSameLines(path, "read -P 0x41 0 128", "read -P 0x41 0 100", "read -P 0x42 -s 99 -l 28 0 128", "read -v 90 37");
    }

    [Theory]
    [InlineData("read 1M 512")]
    [InlineData("read 1048575 2")]
    [InlineData("read 1M 0")]
    [InlineData("read 2M 0")]
    [InlineData("write 1M 1")]
    [InlineData("read -- -1 512")]
    [InlineData("read abc 512")]
    [InlineData("read 0 3G")]
    [InlineData("read 8E 1")]
    [InlineData("read 0")]
    [InlineData("read 0 1 2")]
    [InlineData("read -x 0 1")]
    [InlineData("write -z -P 1 0 512")]
    [InlineData("write -u 0 512")]
    [InlineData("write -c 0 64k")]
    [InlineData("bogus")]
    [InlineData("length x")]
    [InlineData("sleep abc")]
    [InlineData("alloc 0 1M")]
    [InlineData("alloc 4095k 2k")]
    [InlineData("alloc 5M 1")]
    [InlineData("map")]
    [InlineData("length")]
    [InlineData("info")]
    [InlineData("truncate -m metadata 4M")]
    [InlineData("truncate -m bogus 4M")]
    [InlineData("help read")]
    [InlineData("help bogus")]
    [InlineData("discard 0 64k")]
    [InlineData("write -P 0x11 0 1k")]
    [InlineData("write -C 0 512")]
    [InlineData("read -q 0 512")]
    public void Single_commands_print_what_qemu_io_prints(string command)
    {
        using var dir = new TempDirectory();
        string path = RawImages.Sparse(dir, "a.raw", 1 << 20, 0, 4096, 0x5a);
        AssertSameLines(path, command);
    }

    [Fact]
    public void Read_only_images_refuse_writes_with_qemu_io_message()
    {
        using var dir = new TempDirectory();
        string path = RawImages.Sparse(dir, "a.raw", 1 << 20);
        var q = ProcessRunner.Run(QemuIo.Path, ["-r", "-f", "raw", "-c", "write 0 512", "-c", "discard 0 512", "-c", "read 0 512", path]);
        var b = BlkRunner.Run("io", "-r", "-f", "raw", "-c", "write 0 512", "-c", "discard 0 512", "-c", "read 0 512", path);
        Assert.Equal(q.ExitCode, b.ExitCode);
        Assert.Equal(BlkRunner.Normalize(q.Stderr), b.Stderr);
        Assert.Equal(BlkRunner.Normalize(q.Stdout), BlkRunner.Normalize(b.Stdout));
        Assert.Equal(0, QemuIo.Run(path, "raw", "read -P 0 0 1M").ExitCode);
    }

    [Fact]
    public void Open_and_close_inside_a_script_work_as_in_qemu_io()
    {
        using var dir = new TempDirectory();
        string a = RawImages.Sparse(dir, "a.raw", 1 << 20), b2 = RawImages.Sparse(dir, "b.raw", 2 << 20);
        var q = ProcessRunner.Run(QemuIo.Path, ["-c", $"open -o driver=raw {a}", "-c", "length", "-c", "close", "-c", "length", "-c", $"open -o driver=raw {b2}", "-c", "length"]);
        var ours = BlkRunner.Run("io", "-c", $"open -o driver=raw {a}", "-c", "length", "-c", "close", "-c", "length", "-c", $"open -o driver=raw {b2}", "-c", "length");
        Assert.Equal(q.ExitCode, ours.ExitCode);
        Assert.Equal(q.Stdout, ours.Stdout);
        Assert.Equal(BlkRunner.Normalize(q.Stderr), ours.Stderr);
    }

    [Fact]
    public void Interactive_mode_reads_commands_from_stdin_with_the_prompt()
    {
        using var dir = new TempDirectory();
        string path = RawImages.Sparse(dir, "a.raw", 1 << 20);
        var b = BlkRunner.RunWithInput("length\nbogus\n", "io", "-f", "raw", path);
        Assert.Equal("qemu-io> 1 MiB\nqemu-io> qemu-io> ", b.Stdout);
        Assert.Equal("command \"bogus\" not found\n", b.Stderr);
        Assert.Equal(1, b.ExitCode);
    }

    [Theory]
    [InlineData("-x")]
    [InlineData("--bogus")]
    [InlineData("-U")]
    [InlineData("-t", "bogus")]
    [InlineData("-d", "bogus")]
    [InlineData("-i", "bogus")]
    public void Global_option_errors_match_qemu_io(params string[] options)
    {
        using var dir = new TempDirectory();
        string path = RawImages.Sparse(dir, "a.raw", 1 << 20);
        var q = ProcessRunner.Run(QemuIo.Path, [.. options, "-f", "raw", "-c", "length", path]);
        var b = BlkRunner.Run(["io", .. options, "-f", "raw", "-c", "length", path]);
        Assert.Equal(q.ExitCode, b.ExitCode);
        Assert.Equal(BlkRunner.Normalize(q.Stderr), b.Stderr);
    }

    [Fact]
    public void Missing_images_fail_to_open_like_qemu_io()
    {
        using var dir = new TempDirectory();
        string path = dir.File("missing.raw");
        var q = ProcessRunner.Run(QemuIo.Path, ["-f", "raw", "-c", "length", path]);
        var b = BlkRunner.Run("io", "-f", "raw", "-c", "length", path);
        Assert.Equal(q.ExitCode, b.ExitCode);
        Assert.Equal(BlkRunner.Normalize(q.Stderr), b.Stderr);
    }

    private static void AssertSameLines(string path, params string[] commands)
    {
        string copy = path + ".copy";
        File.Copy(path, copy);
        var q = QemuIo.Run(copy, "raw", commands);
        var b = BlkRunner.Run(["io", "-f", "raw", .. commands.SelectMany(c => new[] { "-c", c }), path]);
        Assert.Equal(BlkRunner.Normalize(q.Stdout), BlkRunner.Normalize(b.Stdout));
        Assert.Equal(BlkRunner.Normalize(q.Stderr), b.Stderr);
        Assert.Equal(q.ExitCode, b.ExitCode);
        Assert.Equal(File.ReadAllBytes(copy), File.ReadAllBytes(path));
    }
}
