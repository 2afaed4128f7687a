using System.Text.Json.Nodes;
using Block.Qmp.Schema;

namespace Block.Qmp.Tests;

/// <summary>
/// Argument checking against the schema, with QEMU 7.2's texts (the oracle tests compare the same cases with
/// qemu-storage-daemon; these run without it and cover what no command of the daemon shares with our schema).
/// </summary>
public sealed class ArgumentValidationTests
{
    private static readonly QapiSchema Schema = QapiSchema.Instance;

    private static string Error(string command, string arguments)
    {
        var cmd = Schema.FindCommand(command) ?? throw new InvalidOperationException(command);
        var e = Assert.Throws<BlockOptionsException>(() => cmd.ValidateArguments(JsonNode.Parse(arguments)!.AsObject()));
        Assert.Equal(QmpErrorClass.GenericError, e.ErrorClass);
        return e.Message;
    }

    private static void Accepted(string command, string? arguments) =>
        Schema.FindCommand(command)!.ValidateArguments(arguments is null ? null : JsonNode.Parse(arguments)!.AsObject());

    private static string TypeError(string typeName, string value, string name)
    {
        var type = Schema.FindType(typeName) ?? throw new InvalidOperationException(typeName);
        return Assert.Throws<BlockOptionsException>(() => QapiArgumentValidator.ValidateValue(type, JsonNode.Parse(value), name)).Message;
    }

    [Fact]
    public void A_missing_required_member_is_named()
    {
        Assert.Equal("Parameter 'size' is missing", Error("block_resize", """{"node-name": "a"}"""));
        Assert.Throws<BlockOptionsException>(() => Accepted("block_resize", null));
    }

    [Fact]
    public void Unexpected_members_are_reported_after_every_declared_member_is_checked()
    {
        Assert.Equal("Parameter 'zz' is unexpected", Error("block_resize", """{"node-name": "a", "size": 1, "zz": 1}"""));
        Assert.Equal("Parameter 'size' is missing", Error("block_resize", """{"zz": 1}"""));
        Assert.Equal("Parameter 'x' is unexpected", Error("query-block", """{"x": 1}"""));
    }

    [Fact]
    public void The_first_bad_member_in_schema_order_is_reported_whatever_the_text_order()
    {
        Assert.Equal("Invalid parameter type for 'node-name', expected: string",
            Error("block_resize", """{"size": "x", "node-name": 1}"""));
    }

    [Theory]
    [InlineData("\"x\"")]
    [InlineData("true")]
    [InlineData("{}")]
    [InlineData("[]")]
    [InlineData("1.5")]
    [InlineData("1.0")]
    [InlineData("1e3")]
    [InlineData("null")]
    [InlineData("9223372036854775808")]
    [InlineData("-9223372036854775809")]
    public void An_int_member_takes_only_a_json_integer_in_int64_range(string value)
    {
        Assert.Equal("Invalid parameter type for 'size', expected: integer",
            Error("block_resize", $$"""{"node-name": "a", "size": {{value}}}"""));
    }

    [Theory]
    [InlineData("-9223372036854775808")]
    [InlineData("9223372036854775807")]
    [InlineData("-0")]
    public void An_int_member_takes_the_whole_int64_range(string value) =>
        Accepted("block_resize", $$"""{"node-name": "a", "size": {{value}}}""");

    [Theory]
    [InlineData("0")]
    [InlineData("-1")]
    [InlineData("-9223372036854775808")]
    [InlineData("18446744073709551615")]
    public void A_uint64_member_takes_up_to_2_pow_64_minus_1_and_negative_integers_as_qemu_does(string value) =>
        Accepted("block-set-write-threshold", $$"""{"node-name": "a", "write-threshold": {{value}}}""");

    [Theory]
    [InlineData("18446744073709551616")]
    [InlineData("1.5")]
    [InlineData("\"x\"")]
    [InlineData("true")]
    [InlineData("null")]
    public void A_bad_uint64_says_what_it_expects(string value)
    {
        Assert.Equal("Parameter 'write-threshold' expects uint64",
            Error("block-set-write-threshold", $$"""{"node-name": "a", "write-threshold": {{value}}}"""));
    }

    [Theory]
    [InlineData("-1")]
    [InlineData("4294967296")]
    [InlineData("-4294967297")]
    public void A_uint32_out_of_range_names_the_c_type(string value)
    {
        Assert.Equal("Parameter 'granularity' expects uint32_t",
            Error("block-dirty-bitmap-add", $$"""{"node": "a", "name": "b", "granularity": {{value}}}"""));
    }

    [Fact]
    public void A_uint32_that_is_not_an_integer_fails_as_a_uint64()
    {
        Assert.Equal("Parameter 'granularity' expects uint64",
            Error("block-dirty-bitmap-add", """{"node": "a", "name": "b", "granularity": "x"}"""));
        Accepted("block-dirty-bitmap-add", """{"node": "a", "name": "b", "granularity": 4294967295}""");
    }

    [Theory]
    [InlineData("int8", "128", "Parameter 'v' expects int8_t")]
    [InlineData("int8", "-129", "Parameter 'v' expects int8_t")]
    [InlineData("int16", "32768", "Parameter 'v' expects int16_t")]
    [InlineData("int32", "-2147483649", "Parameter 'v' expects int32_t")]
    [InlineData("uint8", "256", "Parameter 'v' expects uint8_t")]
    [InlineData("uint16", "65536", "Parameter 'v' expects uint16_t")]
    [InlineData("int8", "1.5", "Invalid parameter type for 'v', expected: integer")]
    [InlineData("uint8", "\"x\"", "Parameter 'v' expects uint64")]
    [InlineData("size", "18446744073709551616", "Parameter 'v' expects uint64")]
    [InlineData("size", "1.5", "Parameter 'v' expects uint64")]
    public void Narrow_integer_types_check_their_range(string type, string value, string expected)
    {
        Assert.Equal(expected, TypeError(type, value, "v"));
    }

    [Theory]
    [InlineData("18446744073709551615")]
    [InlineData("-1")]
    public void Size_takes_what_uint64_takes(string value) =>
        QapiArgumentValidator.ValidateValue(Schema.FindType("size")!, JsonNode.Parse(value), "v");

    [Theory]
    [InlineData("str", "1", "string")]
    [InlineData("bool", "\"true\"", "boolean")]
    [InlineData("number", "\"1\"", "number")]
    [InlineData("null", "0", "null")]
    public void Builtins_name_the_json_type_they_expect(string type, string value, string expected)
    {
        Assert.Equal($"Invalid parameter type for 'v', expected: {expected}", TypeError(type, value, "v"));
    }

    [Theory]
    [InlineData("1")]
    [InlineData("1.5")]
    [InlineData("18446744073709551616")]
    public void Number_takes_integers_and_floats(string value) =>
        QapiArgumentValidator.ValidateValue(Schema.FindType("number")!, JsonNode.Parse(value), "v");

    [Theory]
    [InlineData("null")]
    [InlineData("1")]
    [InlineData("\"x\"")]
    [InlineData("[1, {\"a\": null}]")]
    [InlineData("{\"a\": [true]}")]
    public void Any_takes_every_json_value(string value) =>
        QapiArgumentValidator.ValidateValue(Schema.FindType("any")!, JsonNode.Parse(value), "v");

    [Fact]
    public void An_explicit_null_for_an_optional_member_is_a_value_of_the_wrong_type()
    {
        Assert.Equal("Invalid parameter type for 'node-name', expected: string",
            Error("block_resize", """{"node-name": null, "size": 1}"""));
    }

    [Fact]
    public void Enums_take_only_their_values_by_their_exact_spelling()
    {
        Assert.Equal("Parameter 'mode' does not accept value 'xyz'",
            Error("blockdev-snapshot-sync", """{"node-name": "a", "snapshot-file": "b", "mode": "xyz"}"""));
        Assert.Equal("Parameter 'mode' does not accept value 'Existing'",
            Error("blockdev-snapshot-sync", """{"node-name": "a", "snapshot-file": "b", "mode": "Existing"}"""));
        Assert.Equal("Invalid parameter type for 'mode', expected: string",
            Error("blockdev-snapshot-sync", """{"node-name": "a", "snapshot-file": "b", "mode": 1}"""));
        Accepted("blockdev-snapshot-sync", """{"node-name": "a", "snapshot-file": "b", "mode": "absolute-paths"}""");
    }

    [Fact]
    public void A_flat_union_checks_its_tag_then_the_branch_and_names_nested_members_by_path()
    {
        Assert.Equal("Parameter 'driver' is missing", Error("blockdev-add", "{}"));
        Assert.Equal("Parameter 'driver' does not accept value 'zz'", Error("blockdev-add", """{"driver": "zz"}"""));
        Assert.Equal("Parameter 'file' is missing", Error("blockdev-add", """{"driver": "raw"}"""));
        Assert.Equal("Parameter 'file.filename' is missing",
            Error("blockdev-add", """{"driver": "raw", "file": {"driver": "file"}}"""));
        Assert.Equal("Parameter 'file.zz' is unexpected",
            Error("blockdev-add", """{"driver": "raw", "file": {"driver": "file", "filename": "x", "zz": 1}}"""));
        Assert.Equal("Parameter 'filename' is unexpected",
            Error("blockdev-add", """{"driver": "null-co", "filename": "x"}"""));
        Accepted("blockdev-add", """{"driver": "qcow2", "node-name": "n", "file": {"driver": "file", "filename": "x"}}""");
    }

    [Fact]
    public void An_alternate_picks_its_branch_by_json_type_or_names_itself()
    {
        Assert.Equal("Invalid parameter type for 'file', expected: BlockdevRef",
            Error("blockdev-add", """{"driver": "raw", "file": 1}"""));
        Assert.Equal("Parameter 'overlap-check' does not accept value 'zz'",
            Error("blockdev-add", """{"driver": "qcow2", "file": "f", "overlap-check": "zz"}"""));
        Assert.Equal("Parameter 'template' does not accept value 'zz'",
            Error("blockdev-add", """{"driver": "qcow2", "file": "f", "overlap-check": {"template": "zz"}}"""));
        Assert.Equal("Invalid parameter type for 'overlap-check.main-header', expected: boolean",
            Error("blockdev-add", """{"driver": "qcow2", "file": "f", "overlap-check": {"main-header": 1}}"""));
        Accepted("blockdev-add", """{"driver": "qcow2", "file": "f", "overlap-check": "all"}""");
    }

    [Fact]
    public void Array_elements_are_named_by_index_in_paths_and_null_where_qemu_has_no_name()
    {
        Assert.Equal("Invalid parameter type for 'null', expected: BlockdevRef",
            Error("blockdev-add", """{"driver": "quorum", "children": ["a", 1], "vote-threshold": 1}"""));
        Assert.Equal("Parameter 'children[1].filename' is missing",
            Error("blockdev-add", """{"driver": "quorum", "children": ["a", {"driver": "file"}], "vote-threshold": 1}"""));
        Assert.Equal("Invalid parameter type for 'children', expected: array",
            Error("blockdev-add", """{"driver": "quorum", "children": "a", "vote-threshold": 1}"""));
        Assert.Equal("Invalid parameter type for 'inject-error[0].state', expected: integer",
            Error("blockdev-add", """{"driver": "blkdebug", "image": "i", "inject-error": [{"event": "l1_update", "state": "x"}]}"""));
    }

    [Fact]
    public void A_simple_union_wants_type_and_data()
    {
        Assert.Equal("Parameter 'addr.data' is missing", TypeError("SocketAddress", """{"type": "inet"}""", "addr"));
        Assert.Equal("Parameter 'addr.type' is missing", TypeError("SocketAddress", """{"data": {}}""", "addr"));
        Assert.Equal("Parameter 'type' does not accept value 'xx'", TypeError("SocketAddress", """{"type": "xx"}""", "addr"));
        Assert.Equal("Parameter 'to' expects uint16_t",
            TypeError("SocketAddress", """{"type": "inet", "data": {"host": "h", "port": "1", "to": 70000}}""", "addr"));
        Assert.Equal("Parameter 'addr.zz' is unexpected",
            TypeError("SocketAddress", """{"type": "unix", "data": {"path": "p"}, "zz": 1}""", "addr"));
    }

    [Fact]
    public void Values_built_in_process_are_judged_by_their_json_text()
    {
        var cmd = Schema.FindCommand("block_resize")!;
        cmd.ValidateArguments(new JsonObject { ["node-name"] = "a", ["size"] = 512 });
        cmd.ValidateArguments(new JsonObject { ["node-name"] = "a", ["size"] = (byte)1 });
        var e = Assert.Throws<BlockOptionsException>(() => cmd.ValidateArguments(new JsonObject { ["node-name"] = "a", ["size"] = 1.5 }));
        Assert.Equal("Invalid parameter type for 'size', expected: integer", e.Message);
        Schema.FindCommand("block-set-write-threshold")!.ValidateArguments(
            new JsonObject { ["node-name"] = "a", ["write-threshold"] = ulong.MaxValue });
    }

    [Fact]
    public void A_tree_nested_deeper_than_qemus_parser_allows_fails_cleanly()
    {
        // raw over raw over raw… built in process, beyond any parser's depth limit.
        var root = new JsonObject { ["driver"] = "null-co" };
        for (int i = 0; i < 5000; i++)
            root = new JsonObject { ["driver"] = "raw", ["file"] = root };
        var e = Assert.Throws<BlockOptionsException>(() => Schema.FindCommand("blockdev-add")!.ValidateArguments(root));
        Assert.EndsWith("is nested too deeply", e.Message);
        Assert.StartsWith("Parameter 'file.file.file.", e.Message);
    }

    [Fact]
    public void Commands_without_arguments_take_none()
    {
        Accepted("query-named-block-nodes", null);
        Accepted("query-named-block-nodes", "{}");
        Assert.Equal("Parameter 'flat' is unexpected", Error("query-named-block-nodes", """{"flat": true}"""));
    }

    [Fact]
    public void Block_dirty_bitmap_add_takes_persistent_as_users_expect()
    {
        Accepted("block-dirty-bitmap-add", """{"node": "a", "name": "b", "persistent": true}""");
        Assert.Equal("Invalid parameter type for 'persistent', expected: boolean",
            Error("block-dirty-bitmap-add", """{"node": "a", "name": "b", "persistent": "x"}"""));
    }

    [Fact]
    public void Blockdev_add_leaves_its_arguments_to_the_library_options_parser()
    {
        Assert.True(Schema.FindCommand("blockdev-add")!.ArgumentsCheckedByHandler);
        Assert.DoesNotContain(Schema.Commands, c => c.Name != "blockdev-add" && c.ArgumentsCheckedByHandler);
    }
}
