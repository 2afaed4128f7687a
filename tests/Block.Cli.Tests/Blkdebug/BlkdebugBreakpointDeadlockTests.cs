using Block.TestSupport;

namespace Block.Cli.Tests.Blkdebug;

/// <summary>
/// Where qemu-io 7.2 waits forever (a synchronous command, <c>aio_flush</c> or exit with a request held at a
/// breakpoint; <c>wait_break</c> for a breakpoint nothing in flight can reach), <c>blk io</c> fails the command with
/// EDEADLK, or at exit resumes the held request, and ends.
/// </summary>
public sealed class BlkdebugBreakpointDeadlockTests
{
    private static ProcessResult Run(string image, params string[] commands)
    {
        var args = new List<string> { "io" };
        foreach (string c in commands)
            args.AddRange(["-c", c]);
        args.AddRange(["-f", "raw", "blkdebug::" + image]);
        return BlkRunner.Run([.. args]);
    }

    private static string NewImage(TempDirectory dir)
    {
        string image = dir.File("t.raw");
        File.WriteAllBytes(image, new byte[1 << 20]);
        return image;
    }

    [Fact]
    public void Wait_break_for_a_breakpoint_no_request_can_reach_fails_with_edeadlk()
    {
        using var dir = new TempDirectory();
        var r = Run(NewImage(dir), "break write_aio A", "wait_break A", "aio_read -q 0 512", "wait_break A");
        Assert.Equal("wait_break failed: Resource deadlock avoided\nwait_break failed: Resource deadlock avoided\n", r.Stdout);
        Assert.Equal(1, r.ExitCode);
    }

    [Fact]
    public void A_synchronous_write_held_at_a_breakpoint_fails_and_a_later_resume_lets_it_finish()
    {
        using var dir = new TempDirectory();
        string image = NewImage(dir);
        var r = Run(image, "break write_aio A", "write -P 5 0 512", "resume A", "aio_flush");
        Assert.Equal("blkdebug: Suspended request 'A'\nwrite failed: Resource deadlock avoided\nblkdebug: Resuming request 'A'\n", r.Stdout);
        Assert.Equal(1, r.ExitCode);
        Assert.DoesNotContain("Pattern verification failed", QemuIo.Run(image, "raw", "read -P 5 0 512").Stdout);
    }

    [Fact]
    public void Aio_flush_with_a_held_request_fails_and_exit_resumes_it()
    {
        using var dir = new TempDirectory();
        string image = NewImage(dir);
        var r = Run(image, "break write_aio A", "aio_write -P 6 0 512", "aio_flush");
        Assert.Equal(
            "blkdebug: Suspended request 'A'\naio_flush failed: Resource deadlock avoided\nblkdebug: Resuming request 'A'\nwrote 512/512 bytes at offset 0\n",
            string.Join('\n', r.Stdout.Split('\n').Where(l => !l.Contains("ops/sec", StringComparison.Ordinal))));
        Assert.Equal(1, r.ExitCode);
        Assert.DoesNotContain("Pattern verification failed", QemuIo.Run(image, "raw", "read -P 6 0 512").Stdout);
    }
}
