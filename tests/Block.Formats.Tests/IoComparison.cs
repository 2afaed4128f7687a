using Block.TestSupport;

namespace Block.Formats.Tests;

/// <summary>The same qemu-io commands run by qemu-io and by <c>blk io</c> on a read-only image, compared.</summary>
internal static class IoComparison
{
    /// <summary>
    /// Runs <paramref name="commands"/> with <c>qemu-io -r</c> and <c>blk io -r</c> on <paramref name="image"/> and
    /// asserts the same exit code, stdout (timings aside) and stderr. Returns qemu-io's stdout and stderr together.
    /// </summary>
    public static string AssertSameReadOnly(string image, string format, params string[] commands)
    {
        var args = new List<string> { "-r", "-f", format };
        foreach (var c in commands)
            args.AddRange(["-c", c]);
        args.Add(image);
        var q = ProcessRunner.Run(QemuIo.Path, args);
        var b = BlkRunner.Run(["io", .. args]);
        Assert.Equal(BlkRunner.Normalize(q.Stdout), BlkRunner.Normalize(b.Stdout));
        Assert.Equal(BlkRunner.AsBlk(q.Stderr), b.Stderr);
        Assert.Equal(q.ExitCode, b.ExitCode);
        return q.Stdout + q.Stderr;
    }
}
