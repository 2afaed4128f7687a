using System.Text.Json.Nodes;

namespace Block.Qmp.Schema;

/// <summary>
/// The QAPI schema the QMP adapter implements: QEMU 2.9's <c>block-core.json</c> and the project's supplement (the
/// QMP core commands and the types block-core takes from other files), as one table of commands, events and types.
/// It checks command arguments, and answers <c>query-qmp-schema</c> and <c>query-commands</c>.
/// </summary>
/// <remarks>
/// The table is <c>QapiSchema.Generated.cs</c>, written by <c>tools/QapiGen</c> from the schema files (see
/// docs/ARCHITECTURE.md); it holds interface facts only, no documentation text. Argument checking, introspection and
/// the command list all read this one table, so they cannot disagree.
/// </remarks>
public sealed partial class QapiSchema
{
    private readonly Dictionary<string, QapiType> _types;
    private readonly Dictionary<string, QapiArrayType> _arrays;
    private readonly Dictionary<string, QapiCommand> _commands;
    private readonly Dictionary<string, QapiEvent> _events;
    private readonly IReadOnlyList<object> _entities;

    internal QapiSchema(IReadOnlyList<QapiType> types, Dictionary<string, QapiType> typesByName, Dictionary<string, QapiArrayType> arrays,
        IReadOnlyList<QapiCommand> commands, IReadOnlyList<QapiEvent> events, IReadOnlyList<object> entities, QapiObjectType empty)
    {
        Types = types;
        _types = typesByName;
        _arrays = arrays;
        Commands = commands;
        Events = events;
        _entities = entities;
        EmptyObject = empty;
        _commands = commands.ToDictionary(c => c.Name, StringComparer.Ordinal);
        _events = events.ToDictionary(e => e.Name, StringComparer.Ordinal);
    }

    /// <summary>The schema of this build.</summary>
    public static QapiSchema Instance { get; } = Create();

    /// <summary>Every command, in schema order.</summary>
    public IReadOnlyList<QapiCommand> Commands { get; }

    /// <summary>Every event, in schema order.</summary>
    public IReadOnlyList<QapiEvent> Events { get; }

    /// <summary>Every named type: the builtins, then the schema's types (implicit ones included) in schema order. Arrays are found with <see cref="FindType"/>.</summary>
    public IReadOnlyList<QapiType> Types { get; }

    /// <summary>The empty object type, which stands for the arguments or return of a command that has none.</summary>
    public QapiObjectType EmptyObject { get; }

    /// <summary>The command named <paramref name="name"/> exactly, or null.</summary>
    public QapiCommand? FindCommand(string name) => _commands.GetValueOrDefault(name);

    /// <summary>The event named <paramref name="name"/> exactly, or null.</summary>
    public QapiEvent? FindEvent(string name) => _events.GetValueOrDefault(name);

    /// <summary>The type named <paramref name="name"/> (<c>BlockInfo</c>, <c>uint64</c>, or <c>[BlockInfo]</c> for an array the schema uses), or null.</summary>
    public QapiType? FindType(string name)
    {
        if (name.StartsWith('['))
            return name.EndsWith(']') && _arrays.TryGetValue(name[1..^1], out var array) ? array : null;
        return _types.GetValueOrDefault(name);
    }

    /// <summary>
    /// The answer to <c>query-qmp-schema</c> for a server that answers <paramref name="servedCommands"/>: the
    /// <c>SchemaInfo</c> objects of those commands, of every event, and of every type they reach, in QEMU 7.2's form.
    /// </summary>
    /// <param name="servedCommands">The command names the server answers: schema names, or keys of <paramref name="aliases"/>.</param>
    /// <param name="aliases">Other names for schema commands (<c>blockdev-del</c> → <c>x-blockdev-del</c>): an alias is
    /// described with its command's argument and return types.</param>
    /// <remarks>
    /// As in QEMU's release builds, type names are masked as numbers in the order the answer first uses them,
    /// builtins keep their names (every integer type shows as <c>int</c>), and arrays are named <c>[T]</c>. Commands
    /// and events come first in schema order, then the types. Each type is defined once, and every name used is
    /// defined: libvirt reads this before it sends anything else. For all 38 commands the answer has 207 entries
    /// (37 KB of JSON) and takes 0.6 ms to build; a server may keep it, since it changes only with the served set.
    /// </remarks>
    /// <exception cref="ArgumentException">A served name is neither a command of the schema nor an alias of one.</exception>
    public JsonArray Introspect(IEnumerable<string> servedCommands, IReadOnlyDictionary<string, string>? aliases = null) =>
        QapiIntrospector.Introspect(this, _entities, Served(servedCommands, aliases));

    /// <summary>
    /// The answer to <c>query-commands</c>: <c>[{"name": …}]</c> for <paramref name="servedCommands"/>, in schema
    /// order (an alias right after its command).
    /// </summary>
    /// <param name="servedCommands">The command names the server answers: schema names, or keys of <paramref name="aliases"/>.</param>
    /// <param name="aliases">Other names for schema commands.</param>
    /// <exception cref="ArgumentException">A served name is neither a command of the schema nor an alias of one.</exception>
    public JsonArray QueryCommands(IEnumerable<string> servedCommands, IReadOnlyDictionary<string, string>? aliases = null)
    {
        var result = new JsonArray();
        foreach (var list in Served(servedCommands, aliases).Values)
        {
            foreach (var name in list)
                result.Add((JsonNode)new JsonObject { ["name"] = name });
        }
        return result;
    }

    /// <summary>For each served command (in schema order), the names it is served under: its own first, then aliases in ordinal order.</summary>
    private SortedDictionary<int, List<string>> Served(IEnumerable<string> servedCommands, IReadOnlyDictionary<string, string>? aliases)
    {
        var index = new Dictionary<QapiCommand, int>();
        for (int i = 0; i < Commands.Count; i++)
            index[Commands[i]] = i;
        var served = new SortedDictionary<int, List<string>>();
        var unknown = new List<string>();
        foreach (var name in servedCommands.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal))
        {
            QapiCommand? command = FindCommand(name);
            if (command is null && aliases != null && aliases.TryGetValue(name, out var target))
                command = FindCommand(target);
            if (command is null)
            {
                unknown.Add(name);
                continue;
            }
            int i = index[command];
            if (!served.TryGetValue(i, out var names))
                served.Add(i, names = []);
            if (name == command.Name)
                names.Insert(0, name);
            else
                names.Add(name);
        }
        if (unknown.Count > 0)
            throw new ArgumentException($"not commands of the schema nor aliases of one: {string.Join(", ", unknown)}", nameof(servedCommands));
        return served;
    }

    private static QapiSchema Create()
    {
        var builder = new QapiSchemaBuilder();
        Define(builder);
        return builder.Build();
    }
}
