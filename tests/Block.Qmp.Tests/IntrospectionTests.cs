using System.Text.Json.Nodes;
using Block.Qmp.Schema;
using Block.TestSupport;

namespace Block.Qmp.Tests;

/// <summary>query-qmp-schema and query-commands: well formed, self-consistent, and shaped as QEMU 7.2 answers.</summary>
public sealed class IntrospectionTests
{
    private static readonly QapiSchema Schema = QapiSchema.Instance;

    private static readonly Dictionary<string, string> Aliases = new() { ["blockdev-del"] = "x-blockdev-del" };

    private static IEnumerable<string> AllCommands => Schema.Commands.Select(c => c.Name);

    private static Dictionary<string, JsonObject> ByName(JsonArray answer) =>
        answer.Select(e => e!.AsObject()).ToDictionary(e => (string)e["name"]!);

    /// <summary>Every type name an entry refers to.</summary>
    private static IEnumerable<string> References(JsonObject entry)
    {
        foreach (var key in new[] { "arg-type", "ret-type", "element-type" })
        {
            if (entry[key] is JsonValue v)
                yield return (string)v!;
        }
        foreach (var list in new[] { "members", "variants" })
        {
            if ((string)entry["meta-type"]! == "enum" || entry[list] is not JsonArray items)
                continue;
            foreach (var item in items)
                yield return (string)item!["type"]!;
        }
    }

    [Fact]
    public void Every_referenced_type_is_defined_exactly_once_and_every_defined_type_is_referenced()
    {
        var answer = Schema.Introspect([.. AllCommands, "blockdev-del"], Aliases);
        var names = answer.Select(e => (string)e!["name"]!).ToList();
        Assert.Equal(names.Count, names.Distinct().Count());

        var defined = names.ToHashSet();
        var referenced = answer.SelectMany(e => References(e!.AsObject())).ToHashSet();
        Assert.Empty(referenced.Except(defined));
        var types = answer.Where(e => (string)e!["meta-type"]! is not ("command" or "event")).Select(e => (string)e!["name"]!);
        Assert.Empty(types.Except(referenced));
    }

    [Fact]
    public void Only_served_commands_appear_with_every_event_and_only_the_types_they_reach()
    {
        var answer = Schema.Introspect(["query-block", "block_resize"]);
        var commands = answer.Where(e => (string)e!["meta-type"]! == "command").Select(e => (string)e!["name"]!);
        Assert.Equal(["query-block", "block_resize"], commands);
        var events = answer.Where(e => (string)e!["meta-type"]! == "event").Select(e => (string)e!["name"]!);
        Assert.Equal(Schema.Events.Select(e => e.Name), events);
        // No BlockdevOptions: nothing served reaches it.
        Assert.DoesNotContain(answer, e => e!["tag"]?.ToString() == "driver");
        Assert.True(answer.Count < Schema.Introspect(AllCommands).Count / 2);
    }

    [Fact]
    public void Type_names_are_numbers_in_order_of_first_use_and_builtins_and_arrays_keep_readable_names()
    {
        var answer = Schema.Introspect(AllCommands);
        var entries = answer.Select(e => e!.AsObject()).ToList();
        Assert.Equal("query-block", (string)entries[0]["name"]!);
        Assert.Equal("0", (string)entries[0]["arg-type"]!);
        Assert.Equal("[1]", (string)entries[0]["ret-type"]!);

        var types = entries.Where(e => (string)e["meta-type"]! is not ("command" or "event")).ToList();
        var numbered = types.Where(e => (string)e["meta-type"]! is "enum" or "object" or "alternate").Select(e => (string)e["name"]!).ToList();
        Assert.Equal(Enumerable.Range(0, numbered.Count).Select(i => i.ToString()).Order(), numbered.Order());
        Assert.Equal("0", numbered[0]);
        Assert.Equal(["any", "bool", "int", "number", "str"],
            types.Where(e => (string)e["meta-type"]! == "builtin").Select(e => (string)e["name"]!).Order());
        foreach (var array in types.Where(e => (string)e["meta-type"]! == "array"))
            Assert.Equal("[" + (string)array["element-type"]! + "]", (string)array["name"]!);

        // q_empty, the arguments of query-block, is the empty object.
        var empty = types.Single(e => (string)e["name"]! == "0");
        Assert.Empty(empty["members"]!.AsArray());
    }

    [Fact]
    public void Optional_members_have_a_null_default_and_unions_list_every_tag_value()
    {
        var answer = ByName(Schema.Introspect(["block_resize", "blockdev-add"]));
        var resize = answer[(string)answer["block_resize"]["arg-type"]!];
        Assert.Equal("""[{"name":"device","type":"str","default":null},{"name":"node-name","type":"str","default":null},{"name":"size","type":"int"}]""",
            resize["members"]!.ToJsonString());

        var options = answer[(string)answer["blockdev-add"]["arg-type"]!];
        Assert.Equal("driver", (string)options["tag"]!);
        var driverEnum = answer[(string)options["members"]![0]!["type"]!];
        Assert.Equal(driverEnum["values"]!.AsArray().Select(v => (string)v!), options["variants"]!.AsArray().Select(v => (string)v!["case"]!));
        Assert.Equal(driverEnum["values"]!.ToJsonString(), new JsonArray([.. driverEnum["members"]!.AsArray().Select(m => (JsonNode)JsonValue.Create((string)m!["name"]!))]).ToJsonString());
    }

    [Fact]
    public void An_alias_is_described_with_its_commands_types_right_after_it()
    {
        var answer = Schema.Introspect(["x-blockdev-del", "blockdev-del"], Aliases);
        var commands = answer.Where(e => (string)e!["meta-type"]! == "command").Select(e => e!.AsObject()).ToList();
        Assert.Equal(["x-blockdev-del", "blockdev-del"], commands.Select(c => (string)c["name"]!));
        Assert.Equal((string)commands[0]["arg-type"]!, (string)commands[1]["arg-type"]!);

        var onlyAlias = Schema.Introspect(["blockdev-del"], Aliases);
        Assert.Single(onlyAlias, e => (string)e!["meta-type"]! == "command");
    }

    [Fact]
    public void A_served_name_the_schema_does_not_know_is_a_programming_error()
    {
        var e = Assert.Throws<ArgumentException>(() => Schema.Introspect(["query-block", "x-no-such-command"]));
        Assert.Contains("x-no-such-command", e.Message);
        Assert.Throws<ArgumentException>(() => Schema.QueryCommands(["blockdev-del"]));
    }

    [Fact]
    public void The_answers_match_the_schemas_own_description_of_them()
    {
        var schemaInfo = Schema.FindCommand("query-qmp-schema")!.ReturnType!;
        QapiArgumentValidator.ValidateValue(schemaInfo, Schema.Introspect([.. AllCommands, "blockdev-del"], Aliases), "return");
        var commandInfo = Schema.FindCommand("query-commands")!.ReturnType!;
        QapiArgumentValidator.ValidateValue(commandInfo, Schema.QueryCommands([.. AllCommands, "blockdev-del"], Aliases), "return");
    }

    [Fact]
    public void Query_commands_lists_the_served_names_in_schema_order_once_each()
    {
        var list = Schema.QueryCommands(["quit", "blockdev-del", "query-block", "x-blockdev-del", "quit"], Aliases);
        Assert.Equal("""[{"name":"query-block"},{"name":"x-blockdev-del"},{"name":"blockdev-del"},{"name":"quit"}]""", list.ToJsonString());
    }

    /// <summary>Commands and the parts of them that are the same in QEMU 7.2 and in our schema.</summary>
    private static readonly (string Name, string[] Keys)[] SharedCommands =
    [
        ("query-block", ["arg-type"]),
        ("block_resize", ["arg-type", "ret-type"]),
        ("block-set-write-threshold", ["arg-type", "ret-type"]),
        ("change-backing-file", ["arg-type", "ret-type"]),
        ("blockdev-snapshot", ["arg-type", "ret-type"]),
        ("blockdev-snapshot-sync", ["arg-type", "ret-type"]),
        ("block-dirty-bitmap-remove", ["arg-type", "ret-type"]),
        ("block-dirty-bitmap-clear", ["arg-type", "ret-type"]),
        ("x-blockdev-change", ["arg-type", "ret-type"]),
        ("blockdev-del", ["arg-type", "ret-type"]),
        ("query-version", ["arg-type", "ret-type"]),
        ("query-commands", ["arg-type", "ret-type"]),
        ("quit", ["arg-type", "ret-type"]),
    ];

    [Fact]
    public async Task Shared_commands_have_the_structure_qemu_storage_daemon_gives_them_and_entries_its_members()
    {
        await using var qsd = await QemuStorageDaemon.StartAsync();
        var theirs = ByName((await qsd.ExecuteOkAsync("query-qmp-schema"))!.AsArray());
        var answer = Schema.Introspect([.. AllCommands, "blockdev-del"], Aliases);
        var ours = ByName(answer);

        foreach (var (name, keys) in SharedCommands)
        {
            foreach (var key in keys)
            {
                Assert.True(JsonNode.DeepEquals(Structure(theirs, (string)theirs[name][key]!, 0), Structure(ours, (string)ours[name][key]!, 0)),
                    $"{name} {key}: QSD {Structure(theirs, (string)theirs[name][key]!, 0)?.ToJsonString()} ours {Structure(ours, (string)ours[name][key]!, 0)?.ToJsonString()}");
            }
        }

        // query-qmp-schema's own answer type, apart from what we never send (features, allow-oob).
        var theirInfo = Structure(theirs, (string)theirs["query-qmp-schema"]["ret-type"]!, 0);
        var ourInfo = Structure(ours, (string)ours["query-qmp-schema"]["ret-type"]!, 0);
        Assert.True(JsonNode.DeepEquals(theirInfo, ourInfo), $"QSD {theirInfo?.ToJsonString()}\nours {ourInfo?.ToJsonString()}");

        // Every entry and sub-entry has only keys QSD uses for its meta-type, and all the keys QSD always gives.
        foreach (var metaType in new[] { "command", "event", "builtin", "enum", "array", "object", "alternate" })
        {
            var theirEntries = theirs.Values.Where(e => (string)e["meta-type"]! == metaType).ToList();
            var ourEntries = ours.Values.Where(e => (string)e["meta-type"]! == metaType).ToList();
            Assert.NotEmpty(ourEntries);
            CheckKeys(metaType, theirEntries, ourEntries);
            foreach (var list in new[] { "members", "variants" })
            {
                CheckKeys($"{metaType}.{list}",
                    theirEntries.SelectMany(e => e[list]?.AsArray() ?? []).Select(m => m!.AsObject()).ToList(),
                    ourEntries.SelectMany(e => e[list]?.AsArray() ?? []).Select(m => m!.AsObject()).ToList());
            }
        }
    }

    private static void CheckKeys(string what, List<JsonObject> theirs, List<JsonObject> ours)
    {
        var allowed = theirs.SelectMany(e => e.Select(p => p.Key)).ToHashSet();
        var always = theirs.Count == 0 ? [] : theirs.Select(e => e.Select(p => p.Key).ToHashSet()).Aggregate((a, b) => [.. a.Intersect(b)]);
        foreach (var entry in ours)
        {
            var keys = entry.Select(p => p.Key).ToHashSet();
            Assert.True(keys.IsSubsetOf(allowed), $"{what}: {entry.ToJsonString()} has keys QSD never uses ({string.Join(", ", keys.Except(allowed))})");
            Assert.True(always.IsSubsetOf(keys), $"{what}: {entry.ToJsonString()} lacks {string.Join(", ", always.Except(keys))}");
        }
    }

    /// <summary>
    /// A type with the masked names resolved: what it is, not what it is called. Recursion stops at depth 8 (our
    /// BlockStats contains itself).
    /// </summary>
    private static JsonNode? Structure(Dictionary<string, JsonObject> table, string name, int depth)
    {
        if (depth > 8)
            return "…";
        var e = table[name];
        switch ((string)e["meta-type"]!)
        {
            case "builtin":
                return name;
            case "enum":
                return new JsonObject { ["enum"] = e["values"]!.DeepClone() };
            case "array":
                return new JsonObject { ["array"] = Structure(table, (string)e["element-type"]!, depth + 1) };
            case "alternate":
                return new JsonObject { ["alternate"] = new JsonArray([.. e["members"]!.AsArray().Select(m => Structure(table, (string)m!["type"]!, depth + 1))]) };
            default:
                var result = new JsonObject();
                var members = new JsonArray();
                foreach (var m in e["members"]!.AsArray())
                {
                    if ((string)m!["name"]! is "features" or "allow-oob")
                        continue;
                    members.Add((JsonNode)new JsonObject
                    {
                        ["name"] = (string)m["name"]!,
                        ["optional"] = m.AsObject().ContainsKey("default"),
                        ["type"] = Structure(table, (string)m["type"]!, depth + 1),
                    });
                }
                result["members"] = members;
                if (e["tag"] is JsonValue tag)
                {
                    result["tag"] = (string)tag!;
                    result["variants"] = new JsonObject(e["variants"]!.AsArray().Select(v =>
                        new KeyValuePair<string, JsonNode?>((string)v!["case"]!, Structure(table, (string)v["type"]!, depth + 1))));
                }
                return result;
        }
    }
}
