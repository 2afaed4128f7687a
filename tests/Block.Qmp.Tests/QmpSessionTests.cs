using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Block.TestSupport;
using FsCheck.Fluent;

namespace Block.Qmp.Tests;

public sealed class QmpSessionTests
{
    [Fact]
    public async Task Greeting_reports_the_seed_schema_version_and_no_capabilities()
    {
        await using var fixture = QmpServerFixture.Start();
        await using var client = await fixture.ConnectAsync(negotiate: false);
        var version = client.Greeting["QMP"]!["version"]!;
        Assert.Equal(2, (int)version["qemu"]!["major"]!);
        Assert.Equal(9, (int)version["qemu"]!["minor"]!);
        Assert.Equal(0, (int)version["qemu"]!["micro"]!);
        Assert.StartsWith("Block ", (string)version["package"]!);
        Assert.Empty(client.Greeting["QMP"]!["capabilities"]!.AsArray());
    }

    [Fact]
    public async Task Every_negotiated_client_of_every_monitor_gets_every_event_with_a_timestamp()
    {
        await using var fixture = QmpServerFixture.Start();
        string second = fixture.Directory.File("second.sock");
        await using var secondListener = QmpListener.ListenUnix(fixture.Server, second);
        await using var a = await fixture.ConnectAsync();
        await using var b = await QmpClient.ConnectUnixAsync(second);
        await b.NegotiateAsync();

        await a.ExecuteOkAsync("blockdev-add", new JsonObject { ["driver"] = "null-co", ["node-name"] = "n", ["size"] = 1 << 20 });
        await a.ExecuteOkAsync("block-set-write-threshold", new JsonObject { ["node-name"] = "n", ["write-threshold"] = 4096 });
        var before = DateTimeOffset.UtcNow;
        await fixture.Graph.FindNode("n")!.WriteAsync(0, new byte[8192]);

        foreach (var client in new[] { a, b })
        {
            var e = await client.WaitEventAsync("BLOCK_WRITE_THRESHOLD", TimeSpan.FromSeconds(20));
            Assert.Equal("n", (string)e["data"]!["node-name"]!);
            Assert.Equal(4096, (long)e["data"]!["amount-exceeded"]!);
            Assert.Equal(4096, (long)e["data"]!["write-threshold"]!);
            long seconds = (long)e["timestamp"]!["seconds"]!;
            long micros = (long)e["timestamp"]!["microseconds"]!;
            Assert.InRange(micros, 0, 999_999);
            Assert.InRange(seconds, before.ToUnixTimeSeconds() - 1, DateTimeOffset.UtcNow.ToUnixTimeSeconds() + 1);
        }
    }

    [Fact]
    public async Task A_failed_guest_read_reaches_clients_as_BLOCK_IO_ERROR_with_the_schemas_members()
    {
        await using var fixture = QmpServerFixture.Start();
        await using var client = await fixture.ConnectAsync();
        await client.ExecuteOkAsync("blockdev-add", (JsonObject)JsonNode.Parse("""
            {"driver": "raw", "node-name": "r0", "file": {"driver": "blkdebug", "image": {"driver": "null-co", "size": 1048576},
             "inject-error": [{"event": "read_aio", "errno": 5, "once": true}]}}
            """)!);
        var backend = fixture.Graph.CreateBackend(fixture.Graph.FindNode("r0")!, new Graph.BlockBackendOptions { Name = "drive0" });
        await Assert.ThrowsAsync<BlockException>(async () => await backend.ReadAsync(0, new byte[512]));

        var e = await client.WaitEventAsync("BLOCK_IO_ERROR", TimeSpan.FromSeconds(20));
        var data = e["data"]!;
        Assert.Equal("drive0", (string)data["device"]!);
        Assert.Equal("r0", (string)data["node-name"]!);
        Assert.Equal("read", (string)data["operation"]!);
        Assert.Equal("report", (string)data["action"]!);
        Assert.False(string.IsNullOrEmpty((string?)data["reason"]));
        Schema.QapiArgumentValidator.ValidateValue(Schema.QapiSchema.Instance.FindEvent("BLOCK_IO_ERROR")!.DataType!, data, "data");
        var devices = (await client.ExecuteOkAsync("query-block"))!.AsArray();
        Assert.Equal("drive0", (string)Assert.Single(devices)!["device"]!);
        await backend.DisposeAsync();
    }

    [Fact]
    public async Task A_write_the_overlap_check_stops_reaches_clients_as_BLOCK_IMAGE_CORRUPTED()
    {
        await using var fixture = QmpServerFixture.Start();
        string image = fixture.Directory.File("c.qcow2");
        QemuImg.Create("qcow2", image, "64M");
        QemuIo.RunChecked(image, "qcow2", "write -P 0x11 0 64k");
        // L2[0] (the first write put the L2 table at 0x40000) now points at the refcount table's cluster (0x10000).
        using (var f = File.OpenWrite(image))
        {
            f.Position = 0x40000;
            f.Write([0x80, 0, 0, 0, 0, 0x01, 0, 0]);
        }
        await using var client = await fixture.ConnectAsync();
        await client.ExecuteOkAsync("blockdev-add", new JsonObject
        {
            ["driver"] = "qcow2",
            ["node-name"] = "q0",
            ["file"] = new JsonObject { ["driver"] = "file", ["filename"] = image },
        });
        await Assert.ThrowsAsync<BlockException>(async () => await fixture.Graph.FindNode("q0")!.WriteAsync(0, new byte[4096]));

        var e = await client.WaitEventAsync("BLOCK_IMAGE_CORRUPTED", TimeSpan.FromSeconds(20));
        var data = e["data"]!;
        Assert.Equal("q0", (string)data["node-name"]!);
        Assert.True((bool)data["fatal"]!);
        Assert.Equal(0x10000, (long)data["offset"]!);
        Schema.QapiArgumentValidator.ValidateValue(Schema.QapiSchema.Instance.FindEvent("BLOCK_IMAGE_CORRUPTED")!.DataType!, data, "data");
    }

    [Fact]
    public async Task Events_are_not_sent_before_capabilities_negotiation()
    {
        await using var fixture = QmpServerFixture.Start();
        await using var negotiated = await fixture.ConnectAsync();
        string other = fixture.Directory.File("other.sock");
        await using var otherListener = QmpListener.ListenUnix(fixture.Server, other);
        await using var raw = await RawQmpConnection.ConnectAsync(other, negotiate: false);

        await negotiated.ExecuteOkAsync("blockdev-add", new JsonObject { ["driver"] = "null-co", ["node-name"] = "n" });
        await negotiated.ExecuteOkAsync("block-set-write-threshold", new JsonObject { ["node-name"] = "n", ["write-threshold"] = 1 });
        await fixture.Graph.FindNode("n")!.WriteAsync(0, new byte[512]);
        await negotiated.WaitEventAsync("BLOCK_WRITE_THRESHOLD", TimeSpan.FromSeconds(20));

        // The unnegotiated client's next message is the reply to its own command, not the event.
        var replies = await raw.ExchangeAsync("{\"execute\":\"query-block\",\"id\":1}");
        var reply = Assert.Single(replies);
        Assert.Equal("CommandNotFound", (string)reply["error"]!["class"]!);
    }

    [Fact]
    public async Task A_hundred_megabyte_line_gets_an_error_and_the_connection_goes_on()
    {
        await using var fixture = QmpServerFixture.Start();
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await socket.ConnectAsync(new UnixDomainSocketEndPoint(fixture.SocketPath));
        await using var stream = new NetworkStream(socket);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        await reader.ReadLineAsync();
        await stream.WriteAsync("{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"query-block\",\"arguments\":{\"x\":\""u8.ToArray());
        var chunk = Encoding.ASCII.GetBytes(new string('a', 1 << 20));
        var sending = Task.Run(async () =>
        {
            for (int i = 0; i < 100; i++)
                await stream.WriteAsync(chunk);
            await stream.WriteAsync("\"}}\n{\"execute\":\"query-version\",\"id\":\"after\"}\n"u8.ToArray());
        });
        var lines = new List<string>();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        while (true)
        {
            string line = (await reader.ReadLineAsync(timeout.Token))!;
            lines.Add(line);
            if (line.Contains("\"after\"", StringComparison.Ordinal))
                break;
        }
        await sending;
        Assert.Contains(lines, l => l.Contains("JSON token size limit exceeded", StringComparison.Ordinal));
        Assert.Contains("\"return\"", lines[^1], StringComparison.Ordinal);
        // Everything the tail of the line produced is bounded by what was sent: a few error replies, no more.
        Assert.InRange(lines.Count, 2, 10);
    }

    [Fact]
    public async Task A_client_that_disconnects_mid_command_leaves_the_server_serving_the_next()
    {
        await using var fixture = QmpServerFixture.Start();
        for (int i = 0; i < 3; i++)
        {
            using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(fixture.SocketPath));
            await socket.SendAsync("{\"execute\":\"qmp_capabilities\"}\n{\"execute\":\"blockdev-add\",\"arguments\":{\"driver\":\"null-co\",\"node-name\":\"n"u8.ToArray().Concat(Encoding.ASCII.GetBytes($"{i}\"}}}}\n")).ToArray());
            socket.Shutdown(SocketShutdown.Both);
        }
        await using var client = await fixture.ConnectAsync();
        var nodes = (await client.ExecuteOkAsync("query-named-block-nodes"))!.AsArray();
        Assert.Equal(["n0", "n1", "n2"], nodes.Select(n => (string)n!["node-name"]!).Order());
    }

    [Fact]
    public async Task Quit_is_answered_even_when_the_server_stops_the_moment_quit_is_requested()
    {
        for (int i = 0; i < 20; i++)
        {
            await using var fixture = QmpServerFixture.Start();
            await using var client = await fixture.ConnectAsync();
            _ = fixture.Server.QuitRequested.ContinueWith(_ => fixture.Server.DisposeAsync().AsTask(), TaskScheduler.Default);
            var reply = await client.ExecuteAsync("quit", timeout: TimeSpan.FromSeconds(20));
            Assert.Empty(reply["return"]!.AsObject());
        }
    }

    [Fact]
    public async Task Quit_replies_and_then_completes_QuitRequested()
    {
        await using var fixture = QmpServerFixture.Start();
        await using var client = await fixture.ConnectAsync();
        Assert.False(fixture.Server.QuitRequested.IsCompleted);
        var reply = await client.ExecuteOkAsync("quit");
        Assert.Empty(reply!.AsObject());
        await fixture.Server.QuitRequested.WaitAsync(TimeSpan.FromSeconds(20));
    }

    [Fact]
    public async Task In_process_callers_get_the_same_errors_as_clients()
    {
        await using var fixture = QmpServerFixture.Start();
        var missing = await Assert.ThrowsAsync<QmpException>(async () => await fixture.Server.ExecuteAsync("no-such-command"));
        Assert.Equal(QmpErrorClass.CommandNotFound, missing.ErrorClass);
        Assert.Equal("The command no-such-command has not been found", missing.Message);
        await fixture.Server.ExecuteAsync("blockdev-add", new JsonObject { ["driver"] = "null-co", ["node-name"] = "n", ["size"] = 4096 });
        var nodes = (await fixture.Server.ExecuteAsync("query-named-block-nodes"))!.AsArray();
        Assert.Equal(4096, (long)Assert.Single(nodes)!["image"]!["virtual-size"]!);
    }

    /// <summary>
    /// Whatever bytes a client sends, the server answers what follows a resynchronising byte (0xFF, as QMP's
    /// specification suggests) and a line end, and keeps serving.
    /// </summary>
    [Fact]
    public async Task After_any_garbage_a_resynchronising_byte_gets_the_connection_back_in_step()
    {
        await using var fixture = QmpServerFixture.Start();
        await using var raw = await RawQmpConnection.ConnectAsync(fixture.SocketPath);
        var garbage = ArbMap.Default.GeneratorFor<byte[]>();
        var samples = garbage.Sample(200, 40);
        foreach (var bytes in samples)
        {
            var replies = await raw.ExchangeBytesAsync([.. bytes, 0xFF]);
            Assert.All(replies, r => Assert.True(r.ContainsKey("error") || r.ContainsKey("return"), Convert.ToHexString(bytes)));
        }
    }
}
