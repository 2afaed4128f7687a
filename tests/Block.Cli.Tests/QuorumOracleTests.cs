using Block.TestSupport;

namespace Block.Cli.Tests;

/// <summary>
/// The <c>quorum</c> driver against qemu-io and qemu-img 7.2 on the same children and the same <c>--image-opts</c>:
/// the vote, its ties, the errors it returns, fifo reads, blkverify mode, repairs, option errors, info and map.
/// </summary>
public sealed class QuorumOracleTests
{
    /// <summary>Raw 1 MiB children c0…c{n-1}, each 0x11 in its first 64 KiB.</summary>
    private static void MakeChildren(TempDirectory dir, int n)
    {
        for (int i = 0; i < n; i++)
        {
            QemuImg.Create("raw", dir.File($"c{i}.raw"), "1M");
            Write(dir, i, "write -P 0x11 0 64k");
        }
    }

    private static void Write(TempDirectory dir, int child, string command) =>
        ProcessRunner.Run(QemuIo.Path, ["-f", "raw", "-c", command, dir.File($"c{child}.raw")]).EnsureSuccess("qemu-io");

    private static string Kid(TempDirectory dir, int i) => $"children.{i}.driver=raw,children.{i}.file.filename={dir.File($"c{i}.raw")}";

    /// <summary>A child whose file is blkdebug failing every <paramref name="eventName"/> request with <paramref name="errno"/>.</summary>
    private static string Failing(TempDirectory dir, int i, string eventName, int errno) =>
        $"children.{i}.driver=raw,children.{i}.file.driver=blkdebug,children.{i}.file.image.filename={dir.File($"c{i}.raw")}," +
        $"children.{i}.file.inject-error.0.event={eventName},children.{i}.file.inject-error.0.errno={errno}";

    private static string Quorum(string options, params string[] children) => string.Join(",", ["driver=quorum", options, .. children]);

    private static void AssertSameAsQemuIo(string imageOpts, params string[] commands)
    {
        string[] args = ["--image-opts", .. commands.SelectMany(c => new[] { "-c", c }), imageOpts];
        var theirs = ProcessRunner.Run(QemuIo.Path, args, TimeSpan.FromSeconds(60));
        var ours = BlkRunner.Run(["io", .. args]);
        Assert.Equal(
            (theirs.ExitCode, BlkRunner.Normalize(theirs.Stdout), BlkRunner.Normalize(theirs.Stderr)),
            (ours.ExitCode, BlkRunner.Normalize(ours.Stdout), BlkRunner.Normalize(ours.Stderr)));
    }

    [Fact]
    public void A_read_returns_the_majoritys_data_and_fails_when_no_version_reaches_the_threshold()
    {
        using var dir = new TempDirectory();
        MakeChildren(dir, 3);
        Write(dir, 1, "write -P 0x99 0 4k");
        string q = Quorum("vote-threshold=2", Kid(dir, 0), Kid(dir, 1), Kid(dir, 2));
        AssertSameAsQemuIo(q, "read -P 0x11 0 64k", "read -v 0 16", "read -P 0 64k 4k");
        Write(dir, 2, "write -P 0x98 0 4k");
        AssertSameAsQemuIo(q, "read 0 4k", "read -P 0x11 4k 4k");
    }

    [Fact]
    public void A_tied_vote_goes_to_the_version_first_seen_last_as_in_qemu()
    {
        using var dir = new TempDirectory();
        MakeChildren(dir, 4);
        // Two against two (A B A B), then three versions of one vote each.
        Write(dir, 1, "write -P 0x22 0 4k");
        Write(dir, 3, "write -P 0x22 0 4k");
        AssertSameAsQemuIo(Quorum("vote-threshold=2", Kid(dir, 0), Kid(dir, 1), Kid(dir, 2), Kid(dir, 3)), "read -v 0 16");
        Write(dir, 2, "write -P 0x33 0 4k");
        AssertSameAsQemuIo(Quorum("vote-threshold=1", Kid(dir, 0), Kid(dir, 1), Kid(dir, 2)), "read -v 0 16");
        AssertSameAsQemuIo(Quorum("vote-threshold=1", Kid(dir, 0), Kid(dir, 1)), "read -v 0 16");
    }

    [Theory]
    [InlineData(5, 28, 0)]
    [InlineData(28, 5, 0)]
    [InlineData(28, 5, 5)]
    [InlineData(5, 28, 28)]
    public void Failed_reads_and_writes_return_the_most_common_error_and_a_tie_goes_to_the_last(int first, int second, int third)
    {
        using var dir = new TempDirectory();
        MakeChildren(dir, 3);
        foreach (string op in new[] { "read_aio", "write_aio" })
        {
            string c0 = third == 0 ? Kid(dir, 0) : Failing(dir, 0, op, third);
            string q = Quorum("vote-threshold=2", c0, Failing(dir, 1, op, first), Failing(dir, 2, op, second));
            AssertSameAsQemuIo(q, op == "read_aio" ? "read 0 4k" : "write 0 4k");
        }
    }

    [Fact]
    public void A_fifo_read_takes_the_first_child_that_answers_and_the_last_error_when_none_does()
    {
        using var dir = new TempDirectory();
        MakeChildren(dir, 3);
        Write(dir, 1, "write -P 0x22 0 4k");
        AssertSameAsQemuIo(Quorum("vote-threshold=1,read-pattern=fifo", Failing(dir, 0, "read_aio", 28), Kid(dir, 1), Kid(dir, 2)), "read -v 0 16");
        AssertSameAsQemuIo(Quorum("vote-threshold=1,read-pattern=fifo", Failing(dir, 0, "read_aio", 5), Failing(dir, 1, "read_aio", 28)), "read 0 16");
        AssertSameAsQemuIo(Quorum("vote-threshold=2,read-pattern=fifo,blkverify=on", Kid(dir, 1), Kid(dir, 0)), "read -v 0 16");
    }

    [Fact]
    public void In_blkverify_mode_copies_that_differ_stop_blk_io_with_qemus_message()
    {
        using var dir = new TempDirectory();
        MakeChildren(dir, 2);
        string q = Quorum("vote-threshold=2,blkverify=on", Kid(dir, 0), Kid(dir, 1));
        AssertSameAsQemuIo(q, "read -P 0x11 0 64k", "read -P 0 64k 4k");
        // Writes reach both copies (each side's run would change the other's input, so ours runs alone).
        Assert.Equal(0, BlkRunner.Run("io", "--image-opts", "-c", "write -P 0x44 8k 4k", "-c", "read -P 0x44 8k 4k", q).ExitCode);
        for (int i = 0; i < 2; i++)
            ProcessRunner.Run(QemuIo.Path, ["-f", "raw", "-c", "read -P 0x44 8k 4k", dir.File($"c{i}.raw")]).EnsureSuccess("qemu-io");
        Write(dir, 1, "write -P 0x22 100 10");
        AssertSameAsQemuIo(q, "read 4k 4k", "readv 0 2k 2k", "read 0 4k");
        AssertSameAsQemuIo(Quorum("vote-threshold=2,blkverify=on", Kid(dir, 0), Failing(dir, 1, "read_aio", 5)), "read 8k 4k");
    }

    [Fact]
    public void Rewrite_corrupted_repairs_the_losers_over_the_range_read_as_qemu_does()
    {
        using var dir = new TempDirectory();
        MakeChildren(dir, 3);
        Write(dir, 1, "write -P 0x22 0 8k");
        foreach (var f in Directory.GetFiles(dir.Path, "c*.raw"))
            File.Copy(f, f + ".orig");
        string q = Quorum("vote-threshold=2,rewrite-corrupted=on", Kid(dir, 0), Kid(dir, 1), Kid(dir, 2));
        string[] session = ["read -P 0x11 0 4k", "read -P 0x11 6k 1k"];
        var theirs = ProcessRunner.Run(QemuIo.Path, ["--image-opts", .. session.SelectMany(c => new[] { "-c", c }), q]);
        var qemuChild = File.ReadAllBytes(dir.File("c1.raw"));
        foreach (var f in Directory.GetFiles(dir.Path, "c*.raw.orig"))
            File.Copy(f, f[..^5], overwrite: true);
        var ours = BlkRunner.Run(["io", "--image-opts", .. session.SelectMany(c => new[] { "-c", c }), q]);
        Assert.Equal((theirs.ExitCode, BlkRunner.Normalize(theirs.Stdout)), (ours.ExitCode, BlkRunner.Normalize(ours.Stdout)));
        Assert.Equal(qemuChild, File.ReadAllBytes(dir.File("c1.raw")));
        // Repaired where it was read, and only there.
        Assert.Equal(0, ProcessRunner.Run(QemuIo.Path, ["-f", "raw", "-c", "read -P 0x11 0 4k", "-c", "read -P 0x22 4k 2k",
            "-c", "read -P 0x11 6k 1k", "-c", "read -P 0x22 7k 1k", dir.File("c1.raw")]).EnsureSuccess("qemu-io").ExitCode);
    }

    [Fact]
    public void Option_errors_are_qemus_in_qemus_order()
    {
        using var dir = new TempDirectory();
        MakeChildren(dir, 2);
        string k0 = Kid(dir, 0), k1 = Kid(dir, 1);
        string[] cases =
        [
            Quorum("vote-threshold=3", k0, k1),
            Quorum("vote-threshold=0", k0),
            "driver=quorum,vote-threshold=1",
            Quorum("read-pattern=fifo", k0),
            Quorum("vote-threshold=1,blkverify=on", k0),
            Quorum("vote-threshold=2,blkverify=on,rewrite-corrupted=on", k0, k1),
            Quorum("vote-threshold=1,read-pattern=bogus", k0),
            Quorum("vote-threshold=0,read-pattern=bogus", k0),
            Quorum("vote-threshold=1,rewrite-corrupted=on,read-pattern=fifo", k0),
        ];
        foreach (string q in cases)
            AssertSameAsQemuIo(q, "read 0 1");
        QemuImg.Run("resize", "-q", "-f", "raw", dir.File("c1.raw"), "2M").EnsureSuccess("qemu-img resize");
        AssertSameAsQemuIo(Quorum("vote-threshold=1", k0, k1), "read 0 1");
    }

    [Fact]
    public void Info_and_map_show_what_qemu_img_shows()
    {
        using var dir = new TempDirectory();
        MakeChildren(dir, 2);
        Write(dir, 1, "write -P 1 64k 4k");
        Write(dir, 0, "write -P 1 128k 64k");
        Write(dir, 1, "write -P 1 160k 128k");
        string q = Quorum("vote-threshold=1", Kid(dir, 0), Kid(dir, 1));
        foreach (var args in new[] { new[] { "info", "--image-opts", q }, ["map", "--output=json", "--image-opts", q], ["map", "--image-opts", q] })
        {
            var theirs = QemuImg.Run(args);
            var ours = BlkRunner.Run(args);
            Assert.Equal((theirs.ExitCode, theirs.Stdout), (ours.ExitCode, ours.Stdout));
        }
    }
}
