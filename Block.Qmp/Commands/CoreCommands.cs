using System.Text.Json.Nodes;
using Block.Qmp.Schema;

namespace Block.Qmp.Commands;

/// <summary>
/// The protocol's own commands: <c>query-commands</c>, <c>query-version</c>, <c>query-qmp-schema</c> (the
/// introspection libvirt reads first, computed from the schema table for exactly the commands served) and
/// <c>quit</c>.
/// </summary>
/// <remarks><c>qmp_capabilities</c> is the session's: it changes the session's mode, not the server.</remarks>
internal static class CoreCommands
{
    public static void Register(QmpCommandTable table)
    {
        table.Add("query-commands", (c, _, _) => ValueTask.FromResult<JsonNode?>(QapiSchema.Instance.QueryCommands(Served(c), c.Server.Commands.Aliases)));
        table.Add("query-version", (c, _, _) => ValueTask.FromResult<JsonNode?>(c.Server.VersionInfo()));
        table.Add("query-qmp-schema", (c, _, _) => ValueTask.FromResult<JsonNode?>(QapiSchema.Instance.Introspect(Served(c), c.Server.Commands.Aliases)));
        table.Add("quit", Quit);
    }

    /// <summary>What the server answers: its table, and qmp_capabilities, which the session answers itself.</summary>
    private static IEnumerable<string> Served(QmpCommandContext context) => ["qmp_capabilities", .. context.Server.Commands.Names];

    private static ValueTask<JsonNode?> Quit(QmpCommandContext context, JsonObject arguments, CancellationToken cancellationToken)
    {
        context.AfterReply(context.Server.RequestQuit);
        return ValueTask.FromResult<JsonNode?>(new JsonObject());
    }
}
