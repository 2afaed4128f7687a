using System.Text.Json.Nodes;
using Block.TestSupport;

namespace Block.Cli.Tests.Serve;

/// <summary>
/// A quorum of three raw children served over NBD by <c>blk serve</c> and by qemu-storage-daemon 7.2 from the same
/// command line, with qemu-io as the guest: the same replies, the same <c>QUORUM_*</c> events, the same children.
/// </summary>
public sealed class QuorumEventOracleTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(60);

    private static string[] CommandLine(TempDirectory dir, string socket, string quorumOptions, params JsonObject?[] files)
    {
        var children = new JsonArray();
        for (int i = 0; i < files.Length; i++)
        {
            var file = files[i] ?? new JsonObject { ["driver"] = "file", ["filename"] = dir.File($"c{i}.raw") };
            children.Add(new JsonObject { ["driver"] = "raw", ["node-name"] = $"r{i}", ["file"] = file });
        }
        var quorum = JsonNode.Parse(quorumOptions)!.AsObject();
        quorum["driver"] = "quorum";
        quorum["node-name"] = "q";
        quorum["children"] = children;
        return
        [
            "--blockdev", quorum.ToJsonString(),
            "--nbd-server", $"addr.type=unix,addr.path={socket}",
            "--export", "type=nbd,id=e,node-name=q,name=disk,writable=on",
        ];
    }

    /// <summary>Child <paramref name="i"/>'s file behind blkdebug, failing the next <paramref name="eventName"/> with <paramref name="errno"/>.</summary>
    private static JsonObject Failing(TempDirectory dir, int i, string eventName, int errno) => new()
    {
        ["driver"] = "blkdebug",
        ["image"] = new JsonObject { ["driver"] = "file", ["filename"] = dir.File($"c{i}.raw") },
        ["inject-error"] = new JsonArray(new JsonObject { ["event"] = eventName, ["errno"] = errno, ["once"] = true }),
    };

    private static void MakeChildren(TempDirectory dir, int n)
    {
        for (int i = 0; i < n; i++)
        {
            QemuImg.Create("raw", dir.File($"c{i}.raw"), "1M");
            QemuIo.RunChecked(dir.File($"c{i}.raw"), "raw", "write -P 0x11 0 64k");
        }
    }

    /// <summary>
    /// Runs the qemu-io session against each server on copies of the same children and returns what each printed,
    /// sent, and left. <paramref name="expectedEvents"/> events are waited for (rate-limited ones come up to a second
    /// late).
    /// </summary>
    private static async Task<(string Output, List<string> Events, byte[][] Children)[]> RunBothAsync(
        TempDirectory dir, int children, int expectedEvents, Func<string, string[]> commandLine, params string[] session)
    {
        var results = new List<(string, List<string>, byte[][])>();
        foreach (string side in new[] { "qsd", "ours" })
        {
            for (int i = 0; i < children; i++)
                File.Copy(dir.File($"c{i}.raw.orig"), dir.File($"c{i}.raw"), overwrite: true);
            string socket = dir.File($"{side}.sock");
            var args = commandLine(socket);
            await using var server = side == "qsd" ? await QemuStorageDaemon.StartAsync(args) : await BlkServe.StartAsync(args);
            var io = new List<string> { "-f", "raw" };
            foreach (var c in session)
                io.AddRange(["-c", c]);
            io.Add($"nbd+unix:///disk?socket={socket}");
            var r = ProcessRunner.Run(QemuIo.Path, io);
            string output = BlkRunner.Normalize($"exit {r.ExitCode}\n{r.Stdout}");
            var deadline = DateTime.UtcNow + Limit;
            while (server.Qmp.Events.Count(e => ((string?)e["event"])!.StartsWith("QUORUM_", StringComparison.Ordinal)) < expectedEvents)
            {
                Assert.True(DateTime.UtcNow < deadline, $"{side}: events {string.Join("\n", server.Qmp.Events.Select(e => e.ToJsonString()))}");
                await Task.Delay(20);
            }
            var events = server.Qmp.TakeEvents()
                .Where(e => ((string?)e["event"])!.StartsWith("QUORUM_", StringComparison.Ordinal))
                .Select(e => $"{e["event"]} {e["data"]!.ToJsonString()}").ToList();
            Assert.True(await server.QuitAsync(), side);
            results.Add((output, events, [.. Enumerable.Range(0, children).Select(i => File.ReadAllBytes(dir.File($"c{i}.raw")))]));
        }
        return [.. results];
    }

    private static void KeepOriginals(TempDirectory dir, int children)
    {
        for (int i = 0; i < children; i++)
            File.Copy(dir.File($"c{i}.raw"), dir.File($"c{i}.raw.orig"), overwrite: true);
    }

    private static void AssertSame((string Output, List<string> Events, byte[][] Children)[] r)
    {
        Assert.Equal(r[0].Output, r[1].Output);
        Assert.Equal(r[0].Events, r[1].Events);
        for (int i = 0; i < r[0].Children.Length; i++)
            Assert.True(r[0].Children[i].AsSpan().SequenceEqual(r[1].Children[i]), $"child {i} differs");
    }

    [Fact]
    public async Task Reads_of_corrupted_copies_report_each_loser_and_rewrite_corrupted_repairs_it()
    {
        using var dir = new TempDirectory();
        MakeChildren(dir, 3);
        QemuIo.RunChecked(dir.File("c1.raw"), "raw", "write -P 0x99 0 4k");
        QemuIo.RunChecked(dir.File("c2.raw"), "raw", "write -P 0x98 8k 4k");
        KeepOriginals(dir, 3);
        foreach (string options in new[] { """{"vote-threshold": 2}""", """{"vote-threshold": 2, "rewrite-corrupted": true}""" })
        {
            var r = await RunBothAsync(dir, 3, 2, s => CommandLine(dir, s, options, null, null, null), "read -P 0x11 0 4k", "read -P 0x11 8k 4k");
            AssertSame(r);
            Assert.Equal(["r1 0", "r2 16"], r[0].Events.Select(e =>
            {
                var data = JsonNode.Parse(e[(e.IndexOf(' ', StringComparison.Ordinal) + 1)..])!;
                return $"{data["node-name"]} {data["sector-num"]}";
            }));
        }
    }

    [Fact]
    public async Task A_write_failing_on_two_of_three_copies_reports_both_and_a_quorum_failure()
    {
        using var dir = new TempDirectory();
        MakeChildren(dir, 3);
        KeepOriginals(dir, 3);
        var r = await RunBothAsync(dir, 3, 4,
            s => CommandLine(dir, s, """{"vote-threshold": 2}""", Failing(dir, 0, "write_aio", 28), Failing(dir, 1, "write_aio", 5), null),
            "write -P 0x22 0 4k", "read -P 0x11 0 4k");
        AssertSame(r);
        Assert.Equal(["QUORUM_REPORT_BAD", "QUORUM_REPORT_BAD", "QUORUM_FAILURE", "QUORUM_REPORT_BAD"], r[0].Events.Select(e => e.Split(' ')[0]));
    }

    [Fact]
    public async Task A_read_error_on_one_copy_is_reported_with_its_error_and_the_read_succeeds()
    {
        using var dir = new TempDirectory();
        MakeChildren(dir, 3);
        KeepOriginals(dir, 3);
        var r = await RunBothAsync(dir, 3, 1,
            s => CommandLine(dir, s, """{"vote-threshold": 2}""", null, Failing(dir, 1, "read_aio", 5), null), "read -P 0x11 0 64k");
        AssertSame(r);
        Assert.Contains("\"error\":\"Input/output error\"", r[0].Events.Single(), StringComparison.Ordinal);
    }
}
