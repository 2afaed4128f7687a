using System.Text.Json;
using System.Text.Json.Nodes;
using Block.Qapi;

namespace Block.Qmp.Commands;

/// <summary>
/// The schema's block commands, each decoding its arguments and calling the <see cref="Graph.BlockGraph"/> method
/// that does the work.
/// </summary>
internal static class BlockCommands
{
    public static void Register(QmpCommandTable table)
    {
        // blockdev-add's arguments are a BlockdevOptions union whose driver branches the library's parser knows
        // (with the drivers registered in this graph, QEMU 7.2's members included), so the parser checks them.
        table.Add("blockdev-add", BlockdevAddAsync);
        table.Add("x-blockdev-del", BlockdevDelAsync);
        table.AddAlias("blockdev-del", "x-blockdev-del");
        table.Add("query-block", (c, _, _) => Result(c.Graph.QueryBlock(), QapiJsonContext.Default.IReadOnlyListBlockInfo));
        table.Add("query-named-block-nodes", (c, _, _) => Result(c.Graph.QueryNamedBlockNodes(), QapiJsonContext.Default.IReadOnlyListBlockDeviceInfo));
        table.Add("query-blockstats", (c, a, _) =>
            Result(c.Graph.QueryBlockStats(a.OptionalBool("query-nodes") ?? false), QapiJsonContext.Default.IReadOnlyListBlockStats));
        table.Add("block-set-write-threshold", SetWriteThreshold);
    }

    private static ValueTask<JsonNode?> Result<T>(T value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> typeInfo) =>
        ValueTask.FromResult(JsonSerializer.SerializeToNode(value, typeInfo));

    private static readonly ValueTask<JsonNode?> Empty = ValueTask.FromResult<JsonNode?>(null);

    private static async ValueTask<JsonNode?> BlockdevAddAsync(QmpCommandContext context, JsonObject arguments, CancellationToken cancellationToken)
    {
        var options = context.Graph.Parser.ParseJson(arguments);
        await context.Graph.AddNodeAsync(options, cancellationToken).ConfigureAwait(false);
        return null;
    }

    private static async ValueTask<JsonNode?> BlockdevDelAsync(QmpCommandContext context, JsonObject arguments, CancellationToken cancellationToken)
    {
        await context.Graph.DeleteNodeAsync(arguments.RequiredString("node-name")).ConfigureAwait(false);
        return null;
    }

    private static ValueTask<JsonNode?> SetWriteThreshold(QmpCommandContext context, JsonObject arguments, CancellationToken cancellationToken)
    {
        ulong threshold = arguments.RequiredUInt64("write-threshold");
        context.Graph.SetWriteThreshold(arguments.RequiredString("node-name"), (long)Math.Min(threshold, long.MaxValue));
        return Empty;
    }
}
