using System.Text.Json.Nodes;

namespace Block.Qmp.Commands;

/// <summary>The protocol's own commands: <c>query-commands</c>, <c>query-version</c> and <c>quit</c>.</summary>
/// <remarks><c>qmp_capabilities</c> is the session's: it changes the session's mode, not the server.</remarks>
internal static class CoreCommands
{
    public static void Register(QmpCommandTable table)
    {
        table.Add("query-commands", QueryCommands);
        table.Add("query-version", (c, _, _) => ValueTask.FromResult<JsonNode?>(c.Server.VersionInfo()));
        table.Add("quit", Quit);
    }

    private static ValueTask<JsonNode?> QueryCommands(QmpCommandContext context, JsonObject arguments, CancellationToken cancellationToken)
    {
        var list = new JsonArray();
        list.Add((JsonNode)new JsonObject { ["name"] = "qmp_capabilities" });
        foreach (string name in context.Server.Commands.Names)
            list.Add((JsonNode)new JsonObject { ["name"] = name });
        return ValueTask.FromResult<JsonNode?>(list);
    }

    private static ValueTask<JsonNode?> Quit(QmpCommandContext context, JsonObject arguments, CancellationToken cancellationToken)
    {
        context.Server.RequestQuit();
        return ValueTask.FromResult<JsonNode?>(new JsonObject());
    }
}
