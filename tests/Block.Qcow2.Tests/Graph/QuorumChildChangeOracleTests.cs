using System.Text.Json.Nodes;
using Block.TestSupport;

namespace Block.Qcow2.Tests.Graph;

/// <summary><c>x-blockdev-change</c> on a quorum, side by side with qemu-storage-daemon 7.2: its rules, messages and child names.</summary>
public sealed class QuorumChildChangeOracleTests
{
    private static JsonObject J(string json) => JsonNode.Parse(json)!.AsObject();

    private static string Raw(TempDirectory dir, int i) =>
        new JsonObject { ["driver"] = "raw", ["node-name"] = $"r{i}", ["file"] = new JsonObject { ["driver"] = "file", ["filename"] = dir.File($"c{i}.raw") } }.ToJsonString();

    [Fact]
    public async Task Children_come_and_go_under_qemus_rules_and_names()
    {
        using var dir = new TempDirectory();
        for (int i = 0; i < 4; i++)
            QemuImg.Create("raw", dir.File($"c{i}.raw"), "1M");
        var quorum = new JsonObject
        {
            ["driver"] = "quorum", ["node-name"] = "q", ["vote-threshold"] = 2,
            ["children"] = new JsonArray(JsonNode.Parse(Raw(dir, 0)), JsonNode.Parse(Raw(dir, 1))),
        };
        var s = new QsdScenario(dir)
            .Blockdev(quorum.ToJsonString()).Blockdev(Raw(dir, 2)).Blockdev(Raw(dir, 3))
            .Command("x-blockdev-change", J("""{"parent": "q", "node": "r2"}"""))
            .Command("x-blockdev-change", J("""{"parent": "q", "child": "children.0"}"""))
            .Command("x-blockdev-change", J("""{"parent": "q", "child": "children.1"}"""))
            .Command("x-blockdev-change", J("""{"parent": "q", "child": "children.0"}"""))
            .Command("x-blockdev-change", J("""{"parent": "q", "node": "r3"}"""))
            .Command("x-blockdev-change", J("""{"parent": "q", "node": "r0"}"""))
            .Command("x-blockdev-change", J("""{"parent": "q", "child": "children.3"}"""))
            .Command("x-blockdev-change", J("""{"parent": "q", "node": "r3"}"""))
            .Command("x-blockdev-change", J("""{"parent": "q", "child": "children.3", "node": "r3"}"""))
            .Command("x-blockdev-change", J("""{"parent": "q"}"""))
            .Command("x-blockdev-change", J("""{"parent": "r1", "node": "r3"}"""))
            .Command("x-blockdev-change", J("""{"parent": "r2", "child": "file"}"""))
            .Command("blockdev-del", J("""{"node-name": "r3"}"""))
            .Command("x-blockdev-change", J("""{"parent": "q", "child": "children.3"}"""))
            .Command("blockdev-del", J("""{"node-name": "r3"}"""));
        await s.RunAsync(graph =>
        {
            // QEMU 7.2 names the quorum by its children as they are now: r1, r2 (r0 left with children.0, r3 with children.3).
            string name = graph.FindNode("q")!.Filename;
            Assert.StartsWith("json:{\"children\": [", name, StringComparison.Ordinal);
            Assert.Equal([dir.File("c1.raw"), dir.File("c2.raw")],
                JsonNode.Parse(name[5..])!["children"]!.AsArray().Select(c => (string)c!["file"]!["filename"]!));
            Assert.Null(graph.FindNode("r0"));
            Assert.Null(graph.FindNode("r3"));
            return Task.CompletedTask;
        });
        s.AssertSameReplies();
    }
}
