using System.Text.Json.Nodes;
using Block.Qapi;

namespace Block.Qmp.Commands;

/// <summary>
/// The schema's mirror commands, <c>drive-mirror</c> and <c>blockdev-mirror</c>: each decodes its arguments and calls
/// the <see cref="Graph.BlockGraph"/> method that starts the job.
/// </summary>
internal static class MirrorCommands
{
    public static void Register(QmpCommandTable table)
    {
        table.Add("drive-mirror", DriveMirrorAsync);
        table.Add("blockdev-mirror", BlockdevMirrorAsync);
    }

    private static async ValueTask<JsonNode?> DriveMirrorAsync(QmpCommandContext context, JsonObject a, CancellationToken cancellationToken)
    {
        await context.Graph.DriveMirrorAsync(a.OptionalString("job-id"), a.RequiredString("device"), a.RequiredString("target"),
            Sync(a), a.OptionalString("format"), a.OptionalString("node-name"), a.OptionalString("replaces"),
            a.OptionalString("mode") == "existing" ? NewImageMode.Existing : NewImageMode.AbsolutePaths,
            a.OptionalInt64("speed") ?? 0, a.OptionalInt64("granularity"), a.OptionalInt64("buf-size"),
            JobCommands.OnError(a, "on-source-error"), JobCommands.OnError(a, "on-target-error"), a.OptionalBool("unmap") ?? true,
            cancellationToken).ConfigureAwait(false);
        return null;
    }

    private static async ValueTask<JsonNode?> BlockdevMirrorAsync(QmpCommandContext context, JsonObject a, CancellationToken cancellationToken)
    {
        await context.Graph.BlockdevMirrorAsync(a.OptionalString("job-id"), a.RequiredString("device"), a.RequiredString("target"),
            Sync(a), a.OptionalString("replaces"), a.OptionalInt64("speed") ?? 0, a.OptionalInt64("granularity"),
            a.OptionalInt64("buf-size"), JobCommands.OnError(a, "on-source-error"), JobCommands.OnError(a, "on-target-error")).ConfigureAwait(false);
        return null;
    }

    /// <summary>The <c>sync</c> member (the schema has checked its value).</summary>
    private static MirrorSyncMode Sync(JsonObject a) =>
        QapiEnum<MirrorSyncMode>.TryParse(a.RequiredString("sync"), out var sync) ? sync : MirrorSyncMode.Full;
}
