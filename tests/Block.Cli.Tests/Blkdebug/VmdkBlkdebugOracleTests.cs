using Block.TestSupport;

namespace Block.Cli.Tests.Blkdebug;

/// <summary>
/// The debug events of the vmdk driver (QEMU 7.2 reports <c>l2_load</c>, <c>l2_update</c>, <c>read_aio</c>,
/// <c>write_aio</c> and <c>cow_write</c> for sparse extents): the same blkdebug rule over the same monolithicSparse image
/// fails the same requests with the same errors in qemu-io and <c>blk io</c>, and leaves images with the same content.
/// </summary>
/// <remarks>
/// Not compared: a lasting (<c>once=off</c>) <c>l2_load</c> error. QEMU marks the cache slot loaded before the grain
/// table is read, so after the failed read it serves a table of zeroes (reads of the grain give zeroes, no error); we
/// do not keep a table we could not read, and every later read fails.
/// </remarks>
public sealed class VmdkBlkdebugOracleTests
{
    public static TheoryData<string, bool> Rules()
    {
        var rows = new TheoryData<string, bool>();
        foreach (string ev in new[] { "l2_load", "l2_update", "read_aio", "write_aio", "cow_write" })
        {
            rows.Add(ev, true);
            if (ev != "l2_load")
                rows.Add(ev, false);
        }
        return rows;
    }

    [Theory]
    [MemberData(nameof(Rules))]
    public void A_rule_on_a_vmdk_event_fails_the_requests_qemu_io_fails(string ev, bool once)
    {
        using var dir = new TempDirectory();
        string config = dir.File("e.conf");
        File.WriteAllText(config, $"[inject-error]\nevent = \"{ev}\"\nonce = \"{(once ? "on" : "off")}\"\n");
        string theirsImage = dir.File("q.vmdk"), oursImage = dir.File("b.vmdk");
        QemuImg.Create("vmdk", theirsImage, "64M");
        File.Copy(theirsImage, oursImage);
        string[] commands = ["write 0 4k", "write -P 1 0 4k", "read 0 4k", "read -P 1 0 4k", "write -P 2 1M 64k", "read -P 2 1M 4k", "write -P 3 2M 8k"];
        var theirs = ProcessRunner.Run(QemuIo.Path, Args(commands, config, theirsImage), TimeSpan.FromSeconds(60));
        var ours = BlkRunner.Run(["io", .. Args(commands, config, oursImage)]);
        Assert.Equal(BlkRunner.Normalize(theirs.Stdout), BlkRunner.Normalize(ours.Stdout));
        Assert.Equal(BlkRunner.Normalize(theirs.Stderr), BlkRunner.Normalize(ours.Stderr));
        Assert.Equal(theirs.ExitCode, ours.ExitCode);
        Assert.Equal(0, QemuImg.Run("compare", "-f", "vmdk", "-F", "vmdk", theirsImage, oursImage).ExitCode);
    }

    private static List<string> Args(string[] commands, string config, string image)
    {
        var args = new List<string> { "-f", "vmdk" };
        foreach (string c in commands)
            args.AddRange(["-c", c]);
        args.Add($"blkdebug:{config}:{image}");
        return args;
    }
}
