using System.Text.Json.Nodes;
using Block.TestSupport;

namespace Block.Tests.Qmp;

/// <summary>The test QMP client and daemon harness, against qemu-storage-daemon 7.2.</summary>
public sealed class QmpClientTests
{
    [Fact]
    public async Task Client_reads_the_greeting_negotiates_and_gets_replies_and_errors()
    {
        using var dir = new TempDirectory();
        await using var qsd = await QemuStorageDaemon.StartAsync();
        Assert.NotNull(qsd.Qmp.Greeting["QMP"]?["version"]?["qemu"]);

        var reply = await qsd.Qmp.ExecuteAsync("query-named-block-nodes", id: "a1");
        Assert.Equal("a1", (string?)reply["id"]);
        Assert.IsType<JsonArray>(reply["return"]);

        var error = await qsd.ExecuteAsync("block_resize", new JsonObject { ["node-name"] = "nope", ["size"] = 512 });
        Assert.Equal("GenericError", (string?)error["error"]?["class"]);
        Assert.Equal("Cannot find device='' nor node-name='nope'", (string?)error["error"]?["desc"]);

        var malformed = await qsd.Qmp.SendRawAsync("{\"execute\": }\n");
        Assert.NotNull(malformed["error"]);
        Assert.IsType<JsonArray>(await qsd.ExecuteOkAsync("query-block"));
    }

    [Fact]
    public async Task Events_interleaved_with_replies_are_queued_apart_from_them()
    {
        using var dir = new TempDirectory();
        string image = dir.File("a.raw");
        File.WriteAllBytes(image, []);
        await using var qsd = await QemuStorageDaemon.StartAsync("--blockdev", $"driver=file,node-name=f0,filename={image}");

        // blockdev-create runs as a job: JOB_STATUS_CHANGE events arrive around and after the reply.
        var created = await qsd.ExecuteAsync("blockdev-create", new JsonObject
        {
            ["job-id"] = "j0",
            ["options"] = new JsonObject { ["driver"] = "qcow2", ["file"] = "f0", ["size"] = 1 << 20 },
        });
        Assert.NotNull(created["return"]);
        var concluded = await WaitForStatusAsync(qsd.Qmp, "concluded");
        Assert.Equal("j0", (string?)concluded["data"]?["id"]);
        Assert.NotNull(concluded["timestamp"]);
        Assert.NotNull((await qsd.ExecuteAsync("job-dismiss", new JsonObject { ["id"] = "j0" }))["return"]);
        Assert.True(await qsd.QuitAsync());
        Assert.Equal(0, QemuImg.Check(image, "qcow2").ExitCode);
    }

    [Fact]
    public async Task A_daemon_that_refuses_its_arguments_fails_with_its_stderr()
    {
        var e = await Assert.ThrowsAsync<InvalidOperationException>(() => QemuStorageDaemon.StartAsync("--blockdev", "driver=nosuchdriver,node-name=x"));
        Assert.Contains("nosuchdriver", e.Message);
    }

    private static async Task<JsonObject> WaitForStatusAsync(QmpClient client, string status)
    {
        while (true)
        {
            var e = await client.WaitEventAsync("JOB_STATUS_CHANGE", TimeSpan.FromSeconds(30));
            if ((string?)e["data"]?["status"] == status)
                return e;
        }
    }
}
