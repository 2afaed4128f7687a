using Block.TestSupport;

namespace Block.Cli.Tests.Blkdebug;

/// <summary>
/// blkdebug's rules against qemu-io 7.2 with the same config file: which request fails after which event, with
/// <c>once</c>, <c>sector</c>, <c>state</c>/<c>set-state</c>, <c>iotype</c> and <c>errno</c>, over a raw format (which
/// reports <c>read_aio</c>/<c>write_aio</c>) and with blkdebug at the top (which only sees the request path's own
/// <c>pwritev</c> events); and the config file's parse errors, word for word.
/// </summary>
public sealed class BlkdebugOracleTests
{
    private const string Top = "{\"driver\":\"blkdebug\",\"config\":\"CONF\",\"image\":{\"driver\":\"file\",\"filename\":\"IMG\"}}";
    private const string OverRaw = "{\"driver\":\"raw\",\"file\":" + Top + "}";

    private static void AssertSameAsQemuIo(string config, string imageSpec, params string[] commands)
    {
        using var dir = new TempDirectory();
        string image = dir.File("r.raw");
        File.WriteAllBytes(image, new byte[1 << 20]);
        File.WriteAllText(dir.File("x.conf"), config);
        string spec = imageSpec.Replace("CONF", dir.File("x.conf")).Replace("IMG", image);
        var args = new List<string>();
        if (!spec.StartsWith('{'))
            args.AddRange(["-f", "raw"]);
        foreach (string c in commands)
            args.AddRange(["-c", c]);
        args.Add(spec.StartsWith('{') ? "json:" + spec : spec);
        var theirs = ProcessRunner.Run(QemuIo.Path, args, TimeSpan.FromSeconds(60));
        var ours = BlkRunner.Run(["io", .. args]);
        Assert.Equal(BlkRunner.Normalize(theirs.Stdout), BlkRunner.Normalize(ours.Stdout));
        Assert.Equal(BlkRunner.Normalize(theirs.Stderr), BlkRunner.Normalize(ours.Stderr));
        Assert.Equal(theirs.ExitCode, ours.ExitCode);
    }

    private static string Rule(string ev, string extra = "") => $"[inject-error]\nevent = \"{ev}\"\nerrno = \"5\"\nonce = \"on\"\n{extra}";

    [Theory]
    [InlineData("pwritev")]
    [InlineData("pwritev_done")]
    [InlineData("write_aio")]
    [InlineData("read_aio")]
    [InlineData("flush_to_os")]
    [InlineData("flush_to_disk")]
    public void An_event_fails_the_next_request_as_in_qemu_with_blkdebug_at_the_top_and_under_raw(string ev)
    {
        string[] commands = ["write 0 512", "write 0 512", "read 0 512", "read 0 512"];
        AssertSameAsQemuIo(Rule(ev), Top, commands);
        AssertSameAsQemuIo(Rule(ev), OverRaw, commands);
    }

    [Theory]
    [InlineData("[inject-error]\nevent = \"read_aio\"\nerrno = \"28\"\nonce = \"on\"\nsector = \"8\"\n", "read 0 512", "read 0 512", "read 4k 512", "read 4k 512")]
    [InlineData("[inject-error]\nevent = \"read_aio\"\nerrno = \"5\"\nsector = \"1\"\n", "read 0 512", "read 512 512", "read 0 4k", "write 512 512")]
    [InlineData("[inject-error]\nevent = \"read_aio\"\niotype = \"write\"\n", "read 0 512", "write 0 512", "read 0 512")]
    [InlineData("[inject-error]\nevent = \"read_aio\"\nerrno = \"0\"\n", "read 0 512", "read 0 512")]
    [InlineData("[inject-error]\nevent = \"read_aio\"\nerrno = \"5\"\nimmediately = \"on\"\n", "read 0 512", "write -z 0 512", "discard 0 512")]
    [InlineData("[inject-error]\nevent = \"write_aio\"\nerrno = \"5\"\nstate = \"2\"\n[set-state]\nevent = \"read_aio\"\nnew_state = \"2\"\n",
        "write 0 512", "read 0 512", "write 0 512", "read 0 512")]
    [InlineData("[inject-error]\nevent = \"read_aio\"\nerrno = \"28\"\n[set-state]\nevent = \"read_aio\"\nnew_state = \"2\"\n[inject-error]\nevent = \"read_aio\"\nstate = \"2\"\nerrno = \"5\"\n",
        "read 0 512", "read 0 512", "read 0 512")]
    [InlineData("[inject-error]\nevent = \"read_aio\"\nerrno = \"28\"\nstate = \"1\"\n[inject-error]\nevent = \"read_aio\"\nerrno = \"5\"\nstate = \"1\"\n", "read 0 512")]
    [InlineData("[inject-error]\nevent = \"read_aio\"\n[inject-error]\nevent = \"write_aio\"\nsector = \"0\"\n", "read 4k 512", "read 0 512", "write 0 512", "read 0 512")]
    [InlineData("# comment\n\n[inject-error \"id1\"]\nevent = \"read_aio\"   \n", "read 0 512")]
    public void Rules_with_sector_once_state_and_iotype_fail_the_requests_qemu_fails(string config, params string[] commands) =>
        AssertSameAsQemuIo(config, "blkdebug:CONF:IMG", commands);

    [Theory]
    [InlineData("[foo]\nevent = \"read_aio\"\n")]
    [InlineData("event = \"read_aio\"\n")]
    [InlineData("[inject-error]\nerrno = \"5\"\n")]
    [InlineData("[inject-error]\nevent = \"bogus\"\n")]
    [InlineData("[inject-error]\nevent = \"l2_alloc.write\"\n")]
    [InlineData("[inject-error]\nevent = \"read_aio\"\nerrno = \"x\"\n")]
    [InlineData("[inject-error]\nevent = \"read_aio\"\nonce = \"maybe\"\n")]
    [InlineData("[inject-error]\nevent = \"read_aio\"\nsector=\"8\"\n")]
    [InlineData("[inject-error]\nevent = \"read_aio\"\nalign = \"4096\"\n")]
    [InlineData("[inject-error]\n   \nevent = \"read_aio\"\n")]
    [InlineData("[inject-error\nevent = \"read_aio\"\n")]
    [InlineData("  [inject-error]\nevent = \"read_aio\"\n")]
    public void A_bad_config_file_is_refused_with_qemus_message(string config) =>
        AssertSameAsQemuIo(config, "blkdebug:CONF:IMG", "read 0 512");

    [Fact]
    public void Blkdebug_file_names_need_a_config_part_and_the_file_must_exist()
    {
        AssertSameAsQemuIo("", "blkdebug:IMG", "read 0 512");
        AssertSameAsQemuIo("", "blkdebug:CONF.missing:IMG", "read 0 512");
        AssertSameAsQemuIo("", "blkdebug::IMG", "read 0 512", "write 0 4k");
    }
}
