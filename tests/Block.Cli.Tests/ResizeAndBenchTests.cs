using System.Text.RegularExpressions;
using Block.TestSupport;

namespace Block.Cli.Tests;

/// <summary><c>blk resize</c> and <c>blk bench</c> behave as qemu-img resize and bench.</summary>
public class ResizeAndBenchTests
{
    [Theory]
    [InlineData(1 << 20, "+1M")]
    [InlineData(1 << 20, "-1M")]
    [InlineData(1 << 20, "--shrink", "-512k")]
    [InlineData(1 << 20, "4M")]
    [InlineData(1 << 20, "1000")]
    [InlineData(1 << 20, "--shrink", "1000")]
    [InlineData(10001, "--shrink", "-1")]
    [InlineData(10000, "+0")]
    [InlineData(10000, "10100")]
    [InlineData(10000, "--shrink", "0")]
    [InlineData(1 << 20, "12x")]
    [InlineData(1 << 20, "--preallocation=full", "3M")]
    [InlineData(1 << 20, "--preallocation=falloc", "3M")]
    [InlineData(1 << 20, "--preallocation=metadata", "3M")]
    [InlineData(1 << 20, "--preallocation=bogus", "3M")]
    [InlineData(1 << 20, "--preallocation=full", "--shrink", "512k")]
    public void Resize_matches_qemu_img(long initial, params string[] args)
    {
        using var dir = new TempDirectory();
        string ours = RawImages.Sparse(dir, "a.raw", initial, 0, 512), theirs = RawImages.Sparse(dir, "b.raw", initial, 0, 512);
        string size = args[^1];
        var options = args[..^1];
        var q = QemuImg.Run(["resize", "-f", "raw", .. options, theirs, size]);
        var b = BlkRunner.Run(["resize", "-f", "raw", .. options, ours, size]);
        Assert.Equal(q.ExitCode, b.ExitCode);
        Assert.Equal(q.Stdout, b.Stdout);
        Assert.Equal(BlkRunner.Normalize(q.Stderr), b.Stderr);
        Assert.Equal(new FileInfo(theirs).Length, new FileInfo(ours).Length);
        Assert.Equal(QemuImg.MapJsonText(theirs), QemuImg.MapJsonText(ours));
    }

    [Theory]
    [InlineData("-c", "1000")]
    [InlineData("-c", "1000", "-d", "4", "-s", "4k", "-S", "8k", "-o", "4k")]
    [InlineData("-c", "100", "-w", "--pattern=0xab")]
    [InlineData("-c", "130", "-w", "--flush-interval=64")]
    [InlineData("-c", "100", "-w", "--flush-interval=10")]
    [InlineData("-c", "100", "--flush-interval=64")]
    [InlineData("-c", "3", "-s", "1M")]
    [InlineData("-c", "abc")]
    [InlineData("-c", "1", "--pattern=256", "-w")]
    [InlineData("-c", "0")]
    [InlineData("-c", "10", "-i", "bogus")]
    [InlineData("-c", "10", "-t", "bogus")]
    [InlineData("-c", "100", "-i", "threads")]
    [InlineData("-c", "100", "-d", "8", "-i", "io_uring")]
    [InlineData("-c", "100", "-w", "-d", "8", "-i", "io_uring", "--flush-interval=16")]
    [InlineData("-c", "100", "-w", "-t", "none", "-n")]
    public void Bench_prints_qemu_img_lines_and_exit_codes(params string[] args)
    {
        using var dir = new TempDirectory();
        string ours = RawImages.Sparse(dir, "a.raw", 1 << 20), theirs = RawImages.Sparse(dir, "b.raw", 1 << 20);
        var q = QemuImg.Run(["bench", "-f", "raw", .. args, theirs]);
        var b = BlkRunner.Run(["bench", "-f", "raw", .. args, ours]);
        Assert.Equal(q.ExitCode, b.ExitCode);
        Assert.Equal(Completion(q.Stdout), Completion(b.Stdout));
        Assert.Equal(BlkRunner.Normalize(q.Stderr), b.Stderr);
        Assert.Equal(File.ReadAllBytes(theirs), File.ReadAllBytes(ours));
    }

    [Fact]
    public void Bench_with_the_inline_engine_reads_every_request()
    {
        using var dir = new TempDirectory();
        string path = RawImages.Sparse(dir, "a.raw", 1 << 20);
        var b = BlkRunner.Run("bench", "-f", "raw", "-c", "5000", "-d", "1", "-i", "inline", path);
        Assert.Equal(0, b.ExitCode);
        Assert.Matches(@"^Sending 5000 read requests, 4096 bytes each, 1 in parallel \(starting at offset 0, step size 4096\)\nRun completed in \d+\.\d{3} seconds\.\n$", b.Stdout);
    }

    [Fact]
    public void Bench_pattern_random_writes_request_aligned_blocks_in_the_same_places_for_the_same_seed()
    {
        using var dir = new TempDirectory();
        string a = RawImages.Sparse(dir, "a.raw", 1 << 20), b = RawImages.Sparse(dir, "b.raw", 1 << 20), c = RawImages.Sparse(dir, "c.raw", 1 << 20);
        string[] common = ["bench", "-f", "raw", "-w", "-c", "40", "-d", "4", "-s", "4k", "-o", "64k", "--pattern=0xcd", "--pattern-random"];
        var run = BlkRunner.Run([.. common, "--seed=5", a]);
        Assert.Equal(0, run.ExitCode);
        Assert.Matches(@"^Sending 40 write requests, 4096 bytes each, 4 in parallel \(random offsets from 65536 aligned to 4096 bytes, seed 5\)\nRun completed in \d+\.\d{3} seconds\.\n$", run.Stdout);
        Assert.Equal(0, BlkRunner.Run([.. common, "--seed=5", "-i", "io_uring", b]).ExitCode);
        Assert.Equal(0, BlkRunner.Run([.. common, "--seed=6", c]).ExitCode);

        var bytes = File.ReadAllBytes(a);
        int written = 0;
        for (int block = 0; block < bytes.Length / 4096; block++)
        {
            var span = bytes.AsSpan(block * 4096, 4096);
            bool all = span.IndexOfAnyExcept((byte)0xcd) < 0, none = span.IndexOfAnyExcept((byte)0) < 0;
            Assert.True(all || none, $"block {block} is partly written");
            if (all)
            {
                Assert.True(block >= 16, "a request landed before -o");
                written++;
            }
        }
        // 40 draws from 240 slots: a few land twice, most do not.
        Assert.InRange(written, 25, 40);
        Assert.Equal(bytes, File.ReadAllBytes(b));
        Assert.NotEqual(bytes, File.ReadAllBytes(c));
    }

    private static string Completion(string stdout) => Regex.Replace(stdout, @"Run completed in \d+\.\d{3} seconds\.", "Run completed in T seconds.");
}
