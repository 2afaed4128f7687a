using Block.TestSupport;

namespace Block.Cli.Tests.Blkdebug;

/// <summary>
/// <c>blk io</c>'s <c>break</c>, <c>wait_break</c>, <c>resume</c>, <c>remove_break</c>, <c>aio_read</c>,
/// <c>aio_write</c> and <c>aio_flush</c> against qemu-io 7.2 running the same script on a copy of the same image:
/// the same lines (breakpoint lines, completion lines, errors) in the same places, the same exit code, and the same
/// image afterwards. Scenarios follow QEMU's iotests 046 (concurrent qcow2 allocations held at <c>write_aio</c>) and
/// 077 (read-modify-write requests held at <c>pwritev_rmw_*</c>).
/// </summary>
public sealed class BlkdebugBreakpointOracleTests
{
    private const string Raw = "-f raw blkdebug::IMG";
    private const string Rmw = "open -o driver=raw,file.align=4k blkdebug::IMG";

    /// <summary>
    /// Scripts whose output qemu-io gives in one order: each request's lines come at a point the script fixes. Their
    /// <c>sleep</c>s give a resumed request time to finish (or reach its next breakpoint) in both tools: 500 ms, as 50
    /// ms was not always enough on a loaded 2-core machine.
    /// </summary>
    public static TheoryData<string, string[]> OrderedScripts() => new()
    {
        { Raw, ["break write_aio A", "aio_write 0 4k", "wait_break A", "resume A", "aio_flush", "read -P 0xcd 0 4k"] },
        { Raw, ["break write_aio A", "break write_aio B", "aio_write 0 512", "resume B", "sleep 500", "resume A", "aio_flush"] },
        { Raw, ["break write_aio A", "aio_write 0 512", "break write_aio A", "aio_write -P 7 512 512", "resume A", "sleep 500", "resume A", "aio_flush"] },
        { Raw, ["break pwritev A", "break write_aio B", "aio_write 0 512", "wait_break B", "resume B", "wait_break A", "resume A", "aio_flush"] },
        { Raw, ["break pwritev_done A", "aio_write 0 512", "wait_break A", "resume A", "aio_flush"] },
        { Raw, ["break read_aio A", "aio_read -P 0 0 512", "wait_break A", "resume A", "aio_flush"] },
        { Raw, ["break write_aio A", "aio_write 0 4k", "remove_break A", "aio_flush"] },
        { Raw, ["break write_aio A", "break write_aio A", "break read_aio A", "remove_break A", "remove_break A"] },
        { Raw, ["resume A", "remove_break A", "break foo A", "break write_aio"] },
        { "-f raw IMG", ["break write_aio A", "resume A", "remove_break A"] },
        { Raw, ["aio_read -P 1 0 512", "aio_flush", "aio_read -P 0 -v 0 32", "aio_flush", "aio_read -q 0 512", "aio_flush", "aio_read -i 0 512",
            "aio_read -C 0 512 512", "aio_flush", "aio_read 0 1G 1G 1G", "aio_read 0 2G", "aio_read -P x 0 1", "aio_read 1023k 2k", "aio_flush"] },
        { Raw, ["aio_write -z 0 512", "aio_flush", "aio_write -z -u 0 1k", "aio_flush", "aio_write -u 0 512", "aio_write -z 0 512 512",
            "aio_write -f -q -P 3 0 512", "aio_flush", "aio_write -i 0 512", "aio_write 0", "aio_write 0 x", "aio_write -x 0 1",
            "aio_write 0 2G", "aio_write 1023k 2k", "aio_flush", "read -P 3 0 512"] },
    };

    /// <summary>
    /// Scripts with requests that finish together: qemu-io's order races with its loop (046 and 077 mask it), so the lines
    /// are compared as a set. So are scripts where a resumed request releases one serialised behind it (077's
    /// overlapping read-modify-writes): qemu-io's one thread prints the first before the second runs, but here the second
    /// runs on an I/O thread as soon as the first releases it, and on a loaded machine it can finish before the first's
    /// completion is recorded (seen on a clean-clone run). The images are compared byte for byte either way.
    /// </summary>
    public static TheoryData<string, string[]> ConcurrentScripts() => new()
    {
        { Rmw, ["break pwritev A", "aio_write -P 10 0x10000 0x800", "wait_break A", "break pwritev_rmw_after_tail B", "aio_write -P 11 0x10000 0x400",
            "break pwritev_done C", "resume A", "wait_break C", "resume C", "sleep 500", "wait_break B", "resume B", "aio_flush"] },
        { Rmw, ["break pwritev_rmw_after_head A", "aio_write -P 10 0x1200 0x200", "wait_break A", "aio_write -P 11 0x1400 0x200", "sleep 500", "resume A", "aio_flush"] },
        { Rmw, ["break pwritev_rmw_head A", "aio_write -P 10 0x2200 0x200", "wait_break A", "aio_write -P 11 0x2400 0x200", "sleep 500", "resume A", "aio_flush"] },
        { Rmw, ["break pwritev_rmw_after_tail A", "aio_write -P 10 0x6000 0x200", "wait_break A", "break pwritev_rmw_after_head B",
            "aio_write -P 10 0x7e00 0x200", "wait_break B", "aio_write -P 11 0x6800 0x1000", "resume A", "sleep 500", "resume B", "aio_flush"] },
        { Raw, ["break write_aio A", "aio_write 0 4k", "wait_break A", "aio_write -P 0x11 4k 4k", "resume A", "aio_flush"] },
        { Rmw, ["break pwritev_rmw_after_tail A", "aio_write -P 10 0x5000 0x200", "wait_break A", "aio_write -P 11 0x5200 0x200",
            "aio_write -P 12 0x5400 0x200", "aio_write -P 13 0x5600 0x200", "sleep 500", "resume A", "aio_flush", "read -P 13 0x5600 0x200"] },
        { Rmw, ["break pwritev A", "aio_write -P 10 0x11000 0x800", "wait_break A", "aio_write -P 11 0x11000 0x1000", "sleep 500", "resume A",
            "aio_flush", "read -P 11 0x11000 0x1000"] },
    };

    [Theory]
    [MemberData(nameof(OrderedScripts))]
    public void A_script_prints_what_qemu_io_prints_in_the_same_order(string open, string[] commands) =>
        AssertSameAsQemuIo("raw", open, commands, ordered: true);

    [Theory]
    [MemberData(nameof(ConcurrentScripts))]
    public void Requests_held_and_resumed_together_print_the_same_lines_and_leave_the_same_image(string open, string[] commands) =>
        AssertSameAsQemuIo("raw", open, commands, ordered: false);

    [Fact]
    public void Concurrent_qcow2_allocations_held_at_write_aio_leave_the_image_qemu_leaves()
    {
        // 046's first cases: a write allocating the middle of a cluster is held while others touch the same cluster.
        string[] commands =
        [
            "break write_aio A", "aio_write -P 10 0x18000 0x2000", "wait_break A", "aio_write -P 11 0x12000 0x2000",
            "aio_write -P 12 0x1c000 0x2000", "resume A", "aio_flush",
            "break write_aio A", "aio_write -P 20 0x28000 0x2000", "wait_break A", "aio_write -P 21 0x2a000 0x10000", "resume A", "aio_flush",
        ];
        AssertSameAsQemuIo("qcow2", "-f qcow2 blkdebug::IMG", commands, ordered: false);
    }

    private static void AssertSameAsQemuIo(string format, string open, string[] commands, bool ordered)
    {
        using var dir = new TempDirectory();
        string theirsImage = dir.File("q.img"), oursImage = dir.File("b.img");
        if (format == "raw")
        {
            File.WriteAllBytes(theirsImage, new byte[1 << 20]);
        }
        else
        {
            QemuImg.Create(format, theirsImage, "64M");
        }
        File.Copy(theirsImage, oursImage);
        var theirs = ProcessRunner.Run(QemuIo.Path, Args(open, commands, theirsImage), TimeSpan.FromSeconds(60));
        var ours = BlkRunner.Run(["io", .. Args(open, commands, oursImage)]);
        string theirsOut = BlkRunner.Normalize(theirs.Stdout), oursOut = BlkRunner.Normalize(ours.Stdout);
        if (ordered)
        {
            Assert.Equal(theirsOut, oursOut);
        }
        else
        {
            Assert.Equal(Lines(theirsOut), Lines(oursOut));
        }
        Assert.Equal(BlkRunner.Normalize(theirs.Stderr), BlkRunner.Normalize(ours.Stderr));
        Assert.Equal(theirs.ExitCode, ours.ExitCode);
        if (format == "raw")
        {
            Assert.Equal(File.ReadAllBytes(theirsImage), File.ReadAllBytes(oursImage));
        }
        else
        {
            Assert.Equal(0, QemuImg.Run("compare", "-f", format, "-F", format, theirsImage, oursImage).ExitCode);
            Assert.Equal(0, QemuImg.Run("check", "-f", format, oursImage).ExitCode);
        }
    }

    private static string[] Args(string open, string[] commands, string image)
    {
        var args = new List<string>();
        string[] words = open.Replace("IMG", image).Split(' ');
        bool openCommand = words[0] == "open";
        if (openCommand)
            args.AddRange(["-c", open.Replace("IMG", image)]);
        foreach (string c in commands)
            args.AddRange(["-c", c]);
        if (!openCommand)
            args.AddRange(words);
        return [.. args];
    }

    private static List<string> Lines(string text) => [.. text.Split('\n').Order(StringComparer.Ordinal)];
}
