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
        table.Add("blockdev-add", BlockdevAddAsync);
        table.Add("x-blockdev-del", BlockdevDelAsync);
        table.AddAlias("blockdev-del", "x-blockdev-del");
        table.Add("x-blockdev-change", ChangeChildAsync);
        table.Add("query-block", (c, _, _) => Result(c.Graph.QueryBlock(), QapiJsonContext.Default.IReadOnlyListBlockInfo));
        table.Add("query-named-block-nodes", (c, _, _) => Result(c.Graph.QueryNamedBlockNodes(), QapiJsonContext.Default.IReadOnlyListBlockDeviceInfo));
        table.Add("query-blockstats", (c, a, _) =>
            Result(c.Graph.QueryBlockStats(a.OptionalBool("query-nodes") ?? false), QapiJsonContext.Default.IReadOnlyListBlockStats));
        table.Add("block_resize", ResizeAsync);
        table.Add("block-set-write-threshold", SetWriteThreshold);
        table.Add("change-backing-file", ChangeBackingFileAsync);
        table.Add("blockdev-snapshot-sync", SnapshotSyncAsync);
        table.Add("blockdev-snapshot", SnapshotAsync);
        table.Add("block-dirty-bitmap-add", AddBitmapAsync);
        table.Add("block-dirty-bitmap-remove", RemoveBitmapAsync);
        table.Add("block-dirty-bitmap-clear", ClearBitmap);
    }

    private static readonly ValueTask<JsonNode?> Empty = ValueTask.FromResult<JsonNode?>(null);

    private static ValueTask<JsonNode?> Result<T>(T value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> typeInfo) =>
        ValueTask.FromResult(JsonSerializer.SerializeToNode(value, typeInfo));

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

    private static async ValueTask<JsonNode?> ChangeChildAsync(QmpCommandContext context, JsonObject arguments, CancellationToken cancellationToken)
    {
        await context.Graph.ChangeChildAsync(arguments.RequiredString("parent"), arguments.OptionalString("child"),
            arguments.OptionalString("node"), cancellationToken).ConfigureAwait(false);
        return null;
    }

    private static async ValueTask<JsonNode?> ResizeAsync(QmpCommandContext context, JsonObject arguments, CancellationToken cancellationToken)
    {
        await context.Graph.ResizeAsync(arguments.OptionalString("device"), arguments.OptionalString("node-name"),
            arguments.RequiredInt64("size"), cancellationToken).ConfigureAwait(false);
        return null;
    }

    private static ValueTask<JsonNode?> SetWriteThreshold(QmpCommandContext context, JsonObject arguments, CancellationToken cancellationToken)
    {
        context.Graph.SetWriteThreshold(arguments.RequiredString("node-name"), arguments.RequiredUInt64("write-threshold"));
        return Empty;
    }

    private static async ValueTask<JsonNode?> ChangeBackingFileAsync(QmpCommandContext context, JsonObject arguments, CancellationToken cancellationToken)
    {
        await context.Graph.ChangeBackingFileAsync(arguments.RequiredString("device"), arguments.RequiredString("image-node-name"),
            arguments.RequiredString("backing-file"), cancellationToken).ConfigureAwait(false);
        return null;
    }

    private static async ValueTask<JsonNode?> SnapshotSyncAsync(QmpCommandContext context, JsonObject arguments, CancellationToken cancellationToken)
    {
        NewImageMode? mode = arguments.OptionalString("mode") is { } m
            ? QapiEnum<NewImageMode>.TryParse(m, out var parsed) ? parsed : throw new BlockOptionsException($"Parameter 'mode' does not accept value '{m}'")
            : null;
        await context.Graph.SnapshotSyncAsync(arguments.OptionalString("device"), arguments.OptionalString("node-name"),
            arguments.RequiredString("snapshot-file"), arguments.OptionalString("snapshot-node-name"), arguments.OptionalString("format"),
            mode, cancellationToken).ConfigureAwait(false);
        return null;
    }

    private static async ValueTask<JsonNode?> SnapshotAsync(QmpCommandContext context, JsonObject arguments, CancellationToken cancellationToken)
    {
        await context.Graph.SnapshotAsync(arguments.RequiredString("node"), arguments.RequiredString("overlay"), cancellationToken).ConfigureAwait(false);
        return null;
    }

    private static async ValueTask<JsonNode?> AddBitmapAsync(QmpCommandContext context, JsonObject arguments, CancellationToken cancellationToken)
    {
        long? granularity = arguments.OptionalInt64("granularity");
        await context.Graph.AddDirtyBitmapAsync(arguments.RequiredString("node"), arguments.RequiredString("name"),
            granularity is { } g ? (uint)g : null, arguments.OptionalBool("persistent"), arguments.OptionalBool("disabled")).ConfigureAwait(false);
        return null;
    }

    private static async ValueTask<JsonNode?> RemoveBitmapAsync(QmpCommandContext context, JsonObject arguments, CancellationToken cancellationToken)
    {
        await context.Graph.RemoveDirtyBitmapAsync(arguments.RequiredString("node"), arguments.RequiredString("name")).ConfigureAwait(false);
        return null;
    }

    private static ValueTask<JsonNode?> ClearBitmap(QmpCommandContext context, JsonObject arguments, CancellationToken cancellationToken)
    {
        context.Graph.ClearDirtyBitmap(arguments.RequiredString("node"), arguments.RequiredString("name"));
        return Empty;
    }
}
