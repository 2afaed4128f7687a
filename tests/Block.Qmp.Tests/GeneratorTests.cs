using Block.Tools.QapiGen;

namespace Block.Qmp.Tests;

/// <summary>tools/QapiGen on small schemas: the QAPI dialect, desugaring, the supplement's overrides, refusals.</summary>
public sealed class GeneratorTests
{
    private static List<Definition> Load(string schema, string supplement = "") =>
        SchemaLoader.Load(QapiReader.Parse(schema, "core.json"), QapiReader.Parse(supplement, "supplement.json"));

    private static string Refusal(string schema, string supplement = "") =>
        Assert.Throws<QapiSchemaException>(() => Load(schema, supplement)).Message;

    [Fact]
    public void Comments_are_dropped_and_single_quoted_members_keep_their_order()
    {
        var definitions = Load("""
            # -*- Mode: Python -*-
            ##
            # @Thing: documentation that must not reach the table ('quoted', #hash)
            ##
            { 'include': 'common.json' }
            { 'struct': 'Thing', # trailing comment
              'data': { 'z': 'str', '*a': 'int', 'm': ['Thing'] } }
            """);
        var thing = Assert.IsType<StructDefinition>(Assert.Single(definitions));
        Assert.Equal([new("z", "str", false), new("a", "int", true), new MemberDefinition("m", "[Thing]", false)], thing.Members);
        string table = TableWriter.Write(definitions, ["core.json"]);
        Assert.DoesNotContain("documentation", table);
        Assert.Contains("""b.Struct("Thing", null, ["z", "str", "*a", "int", "m", "[Thing]"]);""", table);
    }

    [Fact]
    public void A_simple_union_becomes_a_flat_union_over_a_kind_enum_and_data_wrappers()
    {
        var definitions = Load("""
            { 'struct': 'A', 'data': { 'x': 'int' } }
            { 'union': 'U', 'data': { 'a': 'A', 'b': 'A', 's': 'str' } }
            """);
        Assert.Equal(["A", "UKind", "q_obj_U-base", "q_obj_A-wrapper", "q_obj_str-wrapper", "U"], definitions.Select(d => d.Name));
        var union = Assert.IsType<UnionDefinition>(definitions[^1]);
        Assert.Equal("type", union.Tag);
        Assert.Equal("q_obj_U-base", union.Base);
        Assert.Equal(["a", "b", "s"], union.Variants.Select(v => v.Key));
        Assert.Equal(["q_obj_A-wrapper", "q_obj_A-wrapper", "q_obj_str-wrapper"], union.Variants.Select(v => v.Value));
        Assert.All(definitions.Skip(1).SkipLast(1), d => Assert.True(d.Implicit));
    }

    [Fact]
    public void Inline_arguments_bases_and_event_data_become_implicit_structs_before_their_user()
    {
        var definitions = Load("""
            { 'enum': 'K', 'data': [ 'x', 'y' ] }
            { 'struct': 'X', 'data': { 'v': 'bool' } }
            { 'union': 'F', 'base': { 'kind': 'K', '*n': 'str' }, 'discriminator': 'kind', 'data': { 'x': 'X' } }
            { 'command': 'do-it', 'data': { 'a': 'int' }, 'returns': ['X'] }
            { 'command': 'boxed-one', 'data': 'F', 'boxed': true, 'gen': false }
            { 'event': 'HAPPENED', 'data': { '*why': 'str' } }
            { 'event': 'PLAIN' }
            """);
        Assert.Equal(["K", "X", "q_obj_F-base", "F", "q_obj_do-it-arg", "do-it", "boxed-one", "q_obj_HAPPENED-arg", "HAPPENED", "PLAIN"],
            definitions.Select(d => d.Name));
        Assert.Equal(new CommandDefinition("do-it", "q_obj_do-it-arg", "[X]", false, true, true), definitions[5]);
        Assert.Equal(new CommandDefinition("boxed-one", "F", null, true, false, true), definitions[6]);
        Assert.Equal(new EventDefinition("PLAIN", null, false), definitions[^1]);
        string table = TableWriter.Write(definitions, ["core.json"]);
        Assert.Contains("""b.Command("boxed-one", "F", null, QapiCommandFlags.Boxed | QapiCommandFlags.NoGen);""", table);
        Assert.Contains("""b.Union("F", "q_obj_F-base", "kind", ["x", "X"]);""", table);
        Assert.Contains("""b.Event("PLAIN", null);""", table);
    }

    [Fact]
    public void The_supplement_adds_definitions_and_replaces_only_what_its_override_pragma_names()
    {
        const string core = """
            { 'struct': 'A', 'data': { 'x': 'int' } }
            { 'struct': 'B', 'data': { 'a': 'A' } }
            """;
        var definitions = Load(core, """
            { 'pragma': { 'override': [ 'A' ] } }
            { 'struct': 'A', 'data': { 'x': 'int', '*y': 'bool' } }
            { 'struct': 'C', 'data': { 'b': 'B' } }
            """);
        Assert.Equal(["A", "B", "C"], definitions.Select(d => d.Name));
        Assert.Equal(2, ((StructDefinition)definitions[0]).Members.Count);

        Assert.Contains("'A' is already defined", Refusal(core, "{ 'struct': 'A', 'data': {} }"));
        Assert.Contains("'override' pragma", Refusal(core, "{ 'struct': 'A', 'data': {} }"));
        Assert.Contains("does not define", Refusal(core, "{ 'pragma': { 'override': [ 'Z' ] } }"));
    }

    [Theory]
    [InlineData("{ 'struct': 'A', 'data': { 'x': 'Nope' } }", "'A' refers to 'Nope'")]
    [InlineData("{ 'command': 'c', 'returns': ['Nope'] }", "'c' refers to 'Nope'")]
    [InlineData("{ 'struct': 'A', 'data': {} } { 'struct': 'A', 'data': {} }", "'A' is already defined")]
    [InlineData("{ 'struct': 'str', 'data': {} }", "'str' is already defined")]
    [InlineData("{ 'enum': 'K', 'data': ['x'] } { 'struct': 'X', 'data': {} } { 'union': 'U', 'base': { 'k': 'K' }, 'discriminator': 'k', 'data': { 'y': 'X' } }",
        "branch 'y' is not a value of 'K'")]
    [InlineData("{ 'enum': 'K', 'data': ['x'] } { 'union': 'U', 'base': { '*k': 'K' }, 'discriminator': 'k', 'data': {} }",
        "must be a required enum member")]
    [InlineData("{ 'enum': 'K', 'data': ['x'] } { 'alternate': 'Alt', 'data': { 'a': 'str', 'b': 'K' } }", "two branches take a JSON string")]
    [InlineData("{ 'struct': 'A', 'base': 'A2', 'data': { 'x': 'int' } } { 'struct': 'A2', 'data': { 'x': 'str' } }", "member 'x' is defined twice")]
    [InlineData("{ 'struct': 'A', 'data': { 'x': 'int' }", "unexpected end of text")]
    [InlineData("{ 'struct': 'A', 'data': { 'x': 'int', 'x': 'str' } }", "duplicate key 'x'")]
    [InlineData("[ 'x' ]", "a top-level expression must be an object")]
    [InlineData("{ 'struct': 'A', 'data': { 'x': 'int } }", "unterminated string")]
    public void Malformed_or_inconsistent_schemas_are_refused_with_the_reason(string schema, string reason)
    {
        Assert.Contains(reason, Refusal(schema));
    }

    [Fact]
    public void Long_lists_wrap_between_member_pairs_within_120_columns()
    {
        var members = string.Join(", ", Enumerable.Range(0, 30).Select(i => $"'*member-number-{i}': 'int'"));
        string table = TableWriter.Write(Load($"{{ 'struct': 'Wide', 'data': {{ {members} }} }}"), ["core.json"]);
        var lines = table.Split('\n');
        Assert.All(lines, l => Assert.True(l.Length <= 120, l));
        Assert.All(lines.Where(l => l.Contains("*member-number-")), l => Assert.Matches(@"""\*member-number-\d+"", ""int""", l));
    }
}
