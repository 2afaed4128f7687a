using System.Text.Json.Nodes;

namespace Block.Qmp.Commands;

/// <summary>
/// The commands a server answers, by wire name: handlers, the schema names they serve, and aliases (QEMU 7.2's later
/// names for the seed's commands, such as <c>blockdev-del</c> for <c>x-blockdev-del</c>).
/// </summary>
/// <remarks>
/// One table, many front ends: the block commands, and later the device, job and export commands, each register
/// here. Arguments are checked against the schema before a handler runs, so a handler never sees a missing,
/// unexpected or ill-typed member and argument errors happen before any side effect, as in QEMU.
/// </remarks>
public sealed class QmpCommandTable
{
    private readonly Dictionary<string, Entry> _commands = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _aliases = new(StringComparer.Ordinal);

    /// <summary>A registered command.</summary>
    /// <param name="Name">The schema's name.</param>
    /// <param name="Handler">What runs it.</param>
    /// <param name="CheckArguments">Whether the schema checks the arguments first (false for a command whose
    /// handler parses its own, such as <c>blockdev-add</c>, whose options the library's parser reads).</param>
    public sealed record Entry(string Name, QmpCommandHandler Handler, bool CheckArguments);

    /// <summary>
    /// Checks a command's arguments against the schema before its handler runs; throws <see cref="BlockOptionsException"/>
    /// with QEMU's text. Null checks nothing.
    /// </summary>
    public Action<string, JsonObject>? ArgumentChecker { get; set; }

    /// <summary>The names clients may send, aliases excluded, in registration order.</summary>
    public IReadOnlyCollection<string> Names => _commands.Keys;

    /// <summary>The aliases, each mapped to the command it names.</summary>
    public IReadOnlyDictionary<string, string> Aliases => _aliases;

    /// <summary>Adds (or replaces) a command.</summary>
    /// <param name="name">The schema's name.</param>
    /// <param name="handler">What runs it.</param>
    /// <param name="checkArguments">Whether the schema checks its arguments first.</param>
    /// <returns>This table.</returns>
    public QmpCommandTable Add(string name, QmpCommandHandler handler, bool checkArguments = true)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(handler);
        _commands[name] = new Entry(name, handler, checkArguments);
        return this;
    }

    /// <summary>Makes <paramref name="alias"/> another name of <paramref name="name"/>.</summary>
    /// <returns>This table.</returns>
    public QmpCommandTable AddAlias(string alias, string name)
    {
        if (!_commands.ContainsKey(name))
            throw new ArgumentException($"No command '{name}' to alias", nameof(name));
        _aliases[alias] = name;
        return this;
    }

    /// <summary>The command a wire name (or alias) selects, or null.</summary>
    public Entry? Find(string name) =>
        _commands.TryGetValue(name, out var entry) ? entry
        : _aliases.TryGetValue(name, out var target) ? _commands[target]
        : null;

    /// <summary>True if <paramref name="name"/> is a command or an alias of one.</summary>
    public bool Contains(string name) => Find(name) != null;
}
