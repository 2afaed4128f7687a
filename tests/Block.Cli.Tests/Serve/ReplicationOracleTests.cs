using System.Globalization;
using System.Text.Json.Nodes;
using Block.TestSupport;

namespace Block.Cli.Tests.Serve;

/// <summary>
/// Block replication (COLO) driven over QMP on two qemu-system-x86_64 7.2 processes and on two <c>blk serve</c>
/// processes, with the same commands and the same seeded guest writes: the replies, the status and the resulting disks
/// must agree. Guest writes reach each side through an NBD export of its guest drive (<c>colo-disk</c> on the
/// primary, <c>top-disk</c> on the secondary), written with qemu-io.
/// </summary>
public sealed class ReplicationOracleTests
{
    private const int Size = 4 << 20;

    [Theory]
    [InlineData(7)]
    [InlineData(8)]
    public async Task The_primary_secondary_cycle_with_checkpoints_and_failover_agrees_with_qemu(int seed)
    {
        using var qemuDir = new TempDirectory();
        using var blkDir = new TempDirectory();
        var qemu = await RunCycleAsync(qemuDir, seed, blk: false);
        var ours = await RunCycleAsync(blkDir, seed, blk: true);

        Assert.Equal(qemu.Replies.Select(r => r.ToJsonString()), ours.Replies.Select(r => r.ToJsonString()));
        Assert.Equal(0, QemuImg.Compare(qemuDir.File("secondary.img"), blkDir.File("secondary.img")));
        Assert.Equal(0, QemuImg.Compare(qemuDir.File("primary.img"), blkDir.File("primary.img")));
        // Both equal the model: the secondary disk is the last checkpoint plus the secondary's own later writes.
        Assert.Equal(ours.SecondaryModel, File.ReadAllBytes(blkDir.File("secondary.img")));
        Assert.Equal(ours.PrimaryModel, File.ReadAllBytes(blkDir.File("primary.img")));
        Assert.Equal(0, QemuImg.Check(blkDir.File("active.qcow2"), "qcow2").ExitCode);
        Assert.Equal(0, QemuImg.Check(blkDir.File("hidden.qcow2"), "qcow2").ExitCode);
    }

    /// <summary>The bad inputs: each case on a fresh secondary, on QEMU and on blk; every reply must be the same.</summary>
    [Theory]
    [MemberData(nameof(BadInputCases))]
    public async Task Bad_replication_input_is_refused_in_qemus_words(string name, string[] drives, string[] commands)
    {
        Assert.NotEmpty(name);
        using var qemuDir = new TempDirectory();
        using var blkDir = new TempDirectory();
        var qemu = await RunCommandsAsync(qemuDir, drives, commands, blk: false);
        var ours = await RunCommandsAsync(blkDir, drives, commands, blk: true);
        Assert.Equal(qemu, ours);
        Assert.Contains(qemu, r => r.Contains("\"error\"", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_primary_replication_node_is_named_as_qemu_names_it()
    {
        var names = new List<string>();
        foreach (bool blk in new[] { false, true })
        {
            using var dir = new TempDirectory();
            CreateImages(dir);
            await using var side = await Side.StartAsync(blk, $"if=none,id=colo-disk,driver=raw,file.filename={dir.File("primary.img")}");
            await side.Qmp.ExecuteOkAsync("blockdev-add", new JsonObject
            {
                ["driver"] = "replication",
                ["node-name"] = "rep",
                ["mode"] = "primary",
                ["file"] = new JsonObject
                {
                    ["driver"] = "raw",
                    ["file"] = new JsonObject { ["driver"] = "file", ["filename"] = dir.File("secondary.img") },
                },
            });
            var nodes = (JsonArray)(await side.Qmp.ExecuteOkAsync("query-named-block-nodes"))!;
            var rep = nodes.Single(n => n!["node-name"]!.GetValue<string>() == "rep")!;
            names.Add(rep["file"]!.GetValue<string>().Replace(dir.Path, "DIR", StringComparison.Ordinal));
        }
        Assert.Equal(names[0], names[1]);
        Assert.StartsWith("json:{\"driver\": \"replication\", \"mode\": \"primary\"", names[0], StringComparison.Ordinal);
    }

    public static TheoryData<string, string[], string[]> BadInputCases()
    {
        const string sec = "if=none,id=sec-disk,driver=raw,file.filename=DIR/secondary.img";
        const string chain = "file.driver=qcow2,file.file.filename=DIR/active.qcow2,file.backing.driver=qcow2,file.backing.file.filename=DIR/hidden.qcow2,file.backing.backing=sec-disk";
        string Blockdev(string extra) =>
            "{\"driver\":\"replication\",\"node-name\":\"r\"" + extra + "}";
        const string nullFile = ",\"file\":{\"driver\":\"null-co\"}";
        var data = new TheoryData<string, string[], string[]>
        {
            { "options", [sec], [
                "blockdev-add " + Blockdev(nullFile),
                "blockdev-add " + Blockdev(",\"mode\":\"secondary\"" + nullFile),
                "blockdev-add " + Blockdev(",\"mode\":\"primary\",\"top-id\":\"x\"" + nullFile),
                "blockdev-add " + Blockdev(",\"mode\":\"tertiary\"" + nullFile),
                "blockdev-add " + Blockdev(",\"mode\":\"primary\""),
                "xen-set-replication " + "{\"enable\":true,\"primary\":true,\"failover\":true}",
                "query-xen-replication-status " + "{}",
                "xen-set-replication " + "{\"enable\":false,\"primary\":true}",
                "xen-colo-do-checkpoint " + "{}",
            ] },
            { "commands before start", [sec, "if=none,id=top-disk,driver=replication,mode=secondary,top-id=top-disk," + chain], [
                "query-xen-replication-status " + "{}",
                "xen-colo-do-checkpoint " + "{}",
                "xen-set-replication " + "{\"enable\":false,\"primary\":false}",
                "xen-set-replication " + "{\"enable\":false,\"primary\":false,\"failover\":true}",
                "xen-set-replication " + "{\"enable\":true,\"primary\":true}",
                "xen-set-replication " + "{\"enable\":true,\"primary\":false}",
                "xen-set-replication " + "{\"enable\":true,\"primary\":false}",
                "query-xen-replication-status " + "{}",
                "query-block-jobs " + "{}",
            ] },
            { "primary before start", [sec], [
                "blockdev-add " + Blockdev(",\"mode\":\"primary\"" + nullFile),
                "query-xen-replication-status " + "{}",
                "xen-set-replication " + "{\"enable\":true,\"primary\":false}",
                "xen-set-replication " + "{\"enable\":true,\"primary\":true}",
                "query-xen-replication-status " + "{}",
                "xen-colo-do-checkpoint " + "{}",
                "xen-set-replication " + "{\"enable\":false,\"primary\":true}",
                "query-xen-replication-status " + "{}",
            ] },
            { "active without backing", [sec], [
                "blockdev-add " + Blockdev(",\"mode\":\"secondary\",\"top-id\":\"r\",\"file\":{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"DIR/hidden.qcow2\"}}"),
                "xen-set-replication " + "{\"enable\":true,\"primary\":false}",
            ] },
            { "hidden without backing", [sec], [
                "blockdev-add " + Blockdev(",\"mode\":\"secondary\",\"top-id\":\"r\",\"file\":{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"DIR/active.qcow2\"},\"backing\":{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"DIR/hidden.qcow2\"},\"backing\":null}}"),
                "xen-set-replication " + "{\"enable\":true,\"primary\":false}",
            ] },
            { "secondary disk not a drive", ["if=none,id=other,driver=raw,file.filename=DIR/primary.img"], [
                "blockdev-add " + "{\"driver\":\"raw\",\"node-name\":\"sec\",\"file\":{\"driver\":\"file\",\"filename\":\"DIR/secondary.img\"}}",
                "blockdev-add " + Blockdev(",\"mode\":\"secondary\",\"top-id\":\"r\",\"file\":{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"DIR/active.qcow2\"},\"backing\":{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"DIR/hidden.qcow2\"},\"backing\":\"sec\"}}"),
                "xen-set-replication " + "{\"enable\":true,\"primary\":false}",
            ] },
            { "lengths differ", [sec], [
                "blockdev-add " + Blockdev(",\"mode\":\"secondary\",\"top-id\":\"r\",\"file\":{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"DIR/active.qcow2\"},\"backing\":{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"DIR/small.qcow2\"},\"backing\":\"sec-disk\"}}"),
                "xen-set-replication " + "{\"enable\":true,\"primary\":false}",
            ] },
            { "active disk without make_empty", [sec], [
                "blockdev-add " + Blockdev(",\"mode\":\"secondary\",\"top-id\":\"r\",\"file\":{\"driver\":\"qed\",\"file\":{\"driver\":\"file\",\"filename\":\"DIR/active.qed\"},\"backing\":{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"DIR/hidden.qcow2\"},\"backing\":\"sec-disk\"}}"),
                "xen-set-replication " + "{\"enable\":true,\"primary\":false}",
            ] },
            { "top-id below the node", [sec], [
                "blockdev-add " + Blockdev(",\"mode\":\"secondary\",\"top-id\":\"sec-disk\",\"file\":{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"DIR/active.qcow2\"},\"backing\":{\"driver\":\"qcow2\",\"file\":{\"driver\":\"file\",\"filename\":\"DIR/hidden.qcow2\"},\"backing\":\"sec-disk\"}}"),
                "xen-set-replication " + "{\"enable\":true,\"primary\":false}",
                "query-xen-replication-status " + "{}",
            ] },
        };
        return data;
    }

    private static void CreateImages(TempDirectory dir)
    {
        string size = Size.ToString(CultureInfo.InvariantCulture);
        QemuImg.Create("raw", dir.File("primary.img"), size);
        QemuImg.Create("raw", dir.File("secondary.img"), size);
        QemuImg.Create("qcow2", dir.File("active.qcow2"), size);
        QemuImg.Create("qcow2", dir.File("hidden.qcow2"), size);
        QemuImg.Create("qcow2", dir.File("small.qcow2"), "1M");
        QemuImg.Create("qed", dir.File("active.qed"), size);
    }

    private static async Task<List<string>> RunCommandsAsync(TempDirectory dir, string[] drives, string[] commands, bool blk)
    {
        CreateImages(dir);
        await using var side = await Side.StartAsync(blk, [.. drives.Select(d => d.Replace("DIR", dir.Path, StringComparison.Ordinal))]);
        var replies = new List<string>();
        foreach (string line in commands)
        {
            // "command {json arguments}"
            string command = line[..line.IndexOf(' ', StringComparison.Ordinal)];
            string arguments = line[(command.Length + 1)..];
            var args = (JsonObject)JsonNode.Parse(arguments.Replace("DIR", dir.Path, StringComparison.Ordinal))!;
            var reply = await side.Qmp.ExecuteAsync(command, args.Count == 0 ? null : args);
            replies.Add($"{command}: {Strip(reply).ToJsonString()}");
        }
        return replies;
    }

    private sealed record CycleResult(List<JsonObject> Replies, byte[] PrimaryModel, byte[] SecondaryModel);

    private static async Task<CycleResult> RunCycleAsync(TempDirectory dir, int seed, bool blk)
    {
        CreateImages(dir);
        var random = new Random(seed);
        byte[] primaryModel = new byte[Size];
        byte[] secondaryModel = new byte[Size];
        var replies = new List<JsonObject>();
        string secNbd = dir.File("sec-nbd.sock");
        string priNbd = dir.File("pri-nbd.sock");
        await using var secondary = await Side.StartAsync(blk,
            $"if=none,id=sec-disk,driver=raw,file.filename={dir.File("secondary.img")}",
            "if=none,id=top-disk,driver=replication,mode=secondary,top-id=top-disk,file.driver=qcow2," +
            $"file.file.filename={dir.File("active.qcow2")},file.backing.driver=qcow2,file.backing.file.filename={dir.File("hidden.qcow2")},file.backing.backing=sec-disk");
        await using var primary = await Side.StartAsync(blk,
            $"if=none,id=colo-disk,driver=quorum,read-pattern=fifo,vote-threshold=1,children.0.driver=raw,children.0.file.filename={dir.File("primary.img")}");

        async Task Run(Side side, string command, JsonObject? args = null) => replies.Add(Strip(await side.Qmp.ExecuteAsync(command, args)));

        await Run(secondary, "query-xen-replication-status");
        await Run(secondary, "nbd-server-start", new JsonObject { ["addr"] = Unix(secNbd) });
        await Run(secondary, "nbd-server-add", new JsonObject { ["device"] = "sec-disk", ["writable"] = true });
        await Run(secondary, "nbd-server-add", new JsonObject { ["device"] = "top-disk", ["writable"] = true });
        await Run(secondary, "xen-set-replication", new JsonObject { ["enable"] = true, ["primary"] = false });
        await Run(secondary, "query-xen-replication-status");
        await Run(primary, "nbd-server-start", new JsonObject { ["addr"] = Unix(priNbd) });
        await Run(primary, "blockdev-add", new JsonObject
        {
            ["driver"] = "replication",
            ["node-name"] = "rep",
            ["mode"] = "primary",
            ["file"] = new JsonObject
            {
                ["driver"] = "nbd",
                ["server"] = new JsonObject { ["type"] = "unix", ["path"] = secNbd },
                ["export"] = "sec-disk",
            },
        });
        await Run(primary, "x-blockdev-change", new JsonObject { ["parent"] = "colo-disk", ["node"] = "rep" });
        await Run(primary, "xen-set-replication", new JsonObject { ["enable"] = true, ["primary"] = true });
        await Run(primary, "nbd-server-add", new JsonObject { ["device"] = "colo-disk", ["writable"] = true });
        await Run(primary, "query-xen-replication-status");

        string priUrl = $"nbd+unix:///colo-disk?socket={priNbd}";
        string secUrl = $"nbd+unix:///top-disk?socket={secNbd}";
        for (int round = 0; round < 3; round++)
        {
            Write(random, priUrl, primaryModel, 3);
            Write(random, secUrl, secondaryModel, 3);
            Assert.Equal(secondaryModel, ReadAll(secUrl, dir));
            await Run(secondary, "xen-colo-do-checkpoint");
            await Run(primary, "xen-colo-do-checkpoint");
            secondaryModel = (byte[])primaryModel.Clone();
            Assert.Equal(secondaryModel, ReadAll(secUrl, dir));
        }
        Write(random, priUrl, primaryModel, 3);
        Write(random, secUrl, secondaryModel, 3);

        await Run(secondary, "xen-set-replication", new JsonObject { ["enable"] = false, ["primary"] = false, ["failover"] = true });
        // While the commit runs the status is an error ("I/O error occurred"); how long that lasts is timing.
        JsonObject status;
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        do
        {
            status = Strip(await secondary.Qmp.ExecuteAsync("query-xen-replication-status"));
        }
        while (status["return"]?["error"]?.GetValue<bool>() != false && DateTime.UtcNow < deadline);
        replies.Add(status);
        await Run(primary, "xen-set-replication", new JsonObject { ["enable"] = false, ["primary"] = true });
        await Run(primary, "query-xen-replication-status");
        await Run(secondary, "query-xen-replication-status");
        await Run(secondary, "query-block-jobs");
        await Run(secondary, "xen-colo-do-checkpoint");
        return new CycleResult(replies, primaryModel, secondaryModel);
    }

    private static JsonObject Unix(string path) => new() { ["type"] = "unix", ["data"] = new JsonObject { ["path"] = path } };

    /// <summary>The reply without its id: what both sides must say alike.</summary>
    private static JsonObject Strip(JsonObject reply)
    {
        var copy = (JsonObject)reply.DeepClone();
        copy.Remove("id");
        return copy;
    }

    /// <summary><paramref name="count"/> random writes of whole 4 KiB blocks with a random pattern through qemu-io.</summary>
    private static void Write(Random random, string url, byte[] model, int count)
    {
        for (int i = 0; i < count; i++)
        {
            int blocks = random.Next(1, 40);
            long offset = (long)random.Next(0, Size / 4096 - blocks) * 4096;
            byte pattern = (byte)random.Next(1, 256);
            QemuIo.RunChecked(url, "raw", $"write -P 0x{pattern:x2} {offset} {blocks * 4096}");
            model.AsSpan((int)offset, blocks * 4096).Fill(pattern);
        }
    }

    private static byte[] ReadAll(string url, TempDirectory dir)
    {
        string copy = dir.File("read.img");
        QemuImg.Run("convert", "-f", "raw", "-O", "raw", url, copy).EnsureSuccess("qemu-img convert");
        byte[] bytes = File.ReadAllBytes(copy);
        File.Delete(copy);
        return bytes;
    }

    /// <summary>One side: a stopped qemu-system-x86_64 with <c>-drive</c>s, or blk serve with the same <c>--drive</c>s.</summary>
    private sealed class Side : IAsyncDisposable
    {
        private readonly IAsyncDisposable _process;

        private Side(IAsyncDisposable process, QmpClient qmp)
        {
            _process = process;
            Qmp = qmp;
        }

        public QmpClient Qmp { get; }

        public static async Task<Side> StartAsync(bool blk, params string[] drives)
        {
            if (blk)
            {
                var serve = await BlkServe.StartAsync([.. drives.SelectMany(d => new[] { "--drive", d })]);
                return new Side(serve, serve.Qmp);
            }
            var qemu = await QemuSystem.StartAsync([.. drives.SelectMany(d => new[] { "-drive", d })]);
            return new Side(qemu, qemu.Qmp);
        }

        public ValueTask DisposeAsync() => _process.DisposeAsync();
    }
}
