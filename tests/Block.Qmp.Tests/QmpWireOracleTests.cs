using System.Text.Json.Nodes;
using Block.TestSupport;

namespace Block.Qmp.Tests;

/// <summary>
/// The wire protocol against qemu-storage-daemon 7.2: the same texts, well-formed or not, sent to QSD and to our
/// server give the same replies (the version values aside).
/// </summary>
public sealed class QmpWireOracleTests
{
    public static TheoryData<string> Texts => new()
    {
        // Requests QMP refuses.
        "[1]",
        "1",
        "\"str\"",
        "true",
        "{}",
        "{\"id\":1}",
        "{\"foo\":1}",
        "{\"execute\":1}",
        "{\"execute\":\"query-block\",\"arguments\":[]}",
        "{\"execute\":\"query-block\",\"id\":{\"a\":[1]},\"extra\":2}",
        "{\"execute\":\"nope\",\"id\":\"x\"}",
        "{\"execute\":\"qmp_capabilities\",\"id\":7}",
        "{\"execute\":\"qmp_capabilities\",\"arguments\":{\"x\":1}}",
        "{\"execute\":\"query-blockstats\",\"arguments\":{\"query-nodes\":1}}",
        "{\"execute\":\"block_resize\",\"arguments\":{\"node-name\":\"q0\",\"size\":\"x\"}}",
        "{\"execute\":\"block_resize\",\"arguments\":{\"node-name\":\"q0\",\"size\":-1}}",
        "{\"execute\":\"block_resize\",\"arguments\":{\"device\":\"q0\",\"size\":1024}}",
        "{\"execute\":\"block-dirty-bitmap-add\",\"arguments\":{\"node\":\"nope\",\"name\":\"b\"}}",
        "{\"execute\":\"blockdev-snapshot\",\"arguments\":{\"node\":\"a\",\"overlay\":\"b\"}}",
        "{\"exec-oob\":\"query-version\"}",
        "{\"execute\":\"query-block\",\"arguments\":{},\"id\":9,\"control\":1}",
        // Quoting and several texts on a line.
        "{'execute':'query-block','id':'q'}",
        "{\"execute\":\"query-block\",\"id\":6}{\"execute\":\"query-block\",\"id\":7}",
        "{\"execute\":\"query-block\",\"id\":5} 12 {\"execute\":\"query-block\",\"id\":6}",
        "[1,2\n]",
        // Malformed JSON.
        "{bad}",
        "@",
        "}",
        "{\"a\":1,}",
        "{\"a\" 1}",
        "{\"a\":1 \"b\":2}",
        "{1:2}",
        "nul",
        "-",
        "01",
        "[1 2]",
        "[1,]",
        "{\"execute\":\"query-block\",\"id\":3,\"id\":4}",
        "{\"a\":@} {\"execute\":\"query-block\",\"id\":1}",
        "x@y {\"execute\":\"query-block\",\"id\":2}",
        "{\"execute\":\"query-block\",\"id\":3}@@@ ]] }} {\"execute\":\"query-block\",\"id\":4}",
        "\"abc\\q\"",
        "\"\\u00\"",
        "\"\\ud800\"",
        "\"\\u0041\\u00e9\\ud83d\\ude00\"",
        "\u0001",
        "{\"a\":\"x\ny\"}",
        // Nesting past QEMU's limit.
        new string('[', 1100) + new string(']', 1100),
        new string('[', 1000) + new string(']', 1000),
    };

    [Theory]
    [MemberData(nameof(Texts))]
    public async Task A_text_gets_the_replies_qemu_storage_daemon_gives(string text)
    {
        using var dir = new TempDirectory();
        string qsdSocket = dir.File("qsd.sock");
        await using var qsd = await QemuStorageDaemon.StartAsync("--chardev", $"socket,id=raw,path={qsdSocket},server=on,wait=off", "--monitor", "chardev=raw");
        await using var ours = QmpServerFixture.Start();

        await using var theirs = await RawQmpConnection.ConnectAsync(qsdSocket);
        await using var mine = await RawQmpConnection.ConnectAsync(ours.SocketPath);
        var expected = await theirs.ExchangeAsync(text);
        var actual = await mine.ExchangeAsync(text);

        Assert.Equal(Describe(expected), Describe(actual));
    }

    [Fact]
    public async Task Commands_before_negotiation_get_qemus_error_and_negotiation_works_once()
    {
        using var dir = new TempDirectory();
        string qsdSocket = dir.File("qsd.sock");
        await using var qsd = await QemuStorageDaemon.StartAsync("--chardev", $"socket,id=raw,path={qsdSocket},server=on,wait=off", "--monitor", "chardev=raw");
        await using var ours = QmpServerFixture.Start();
        string[] session =
        [
            "{\"execute\":\"query-block\",\"id\":1}",
            "{\"execute\":\"qmp_capabilities\",\"arguments\":{\"x\":1}}",
            "{\"execute\":\"qmp_capabilities\",\"id\":\"x\"}",
            "{\"execute\":\"qmp_capabilities\"}",
            "{\"execute\":\"query-block\"}",
        ];
        await using var theirs = await RawQmpConnection.ConnectAsync(qsdSocket, negotiate: false);
        await using var mine = await RawQmpConnection.ConnectAsync(ours.SocketPath, negotiate: false);
        foreach (string text in session)
            Assert.Equal(Describe(await theirs.ExchangeAsync(text)), Describe(await mine.ExchangeAsync(text)));
    }

    /// <summary>The messages as text, with QEMU's version numbers and package replaced by ours.</summary>
    private static string Describe(List<JsonObject> messages) => string.Join("\n", messages.Select(m =>
    {
        if (m["return"] is JsonObject r && r.ContainsKey("qemu"))
            m["return"] = "VERSION";
        return Block.Qapi.QemuJson.Compact(m);
    }));
}
