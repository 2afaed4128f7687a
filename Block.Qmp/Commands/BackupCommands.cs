using System.Text.Json.Nodes;
using Block.Qapi;

namespace Block.Qmp.Commands;

/// <summary>
/// The backup commands: <c>drive-backup</c> and <c>blockdev-backup</c> (the latter with QEMU 7.2's <c>bitmap</c>),
/// decoded and passed to <see cref="Graph.BlockGraph.DriveBackupAsync"/> and
/// <see cref="Graph.BlockGraph.BlockdevBackupAsync"/>.
/// </summary>
internal static class BackupCommands
{
    public static void Register(QmpCommandTable table)
    {
        table.Add("drive-backup", DriveBackupAsync);
        table.Add("blockdev-backup", BlockdevBackupAsync);
    }

    private static async ValueTask<JsonNode?> DriveBackupAsync(QmpCommandContext context, JsonObject a, CancellationToken cancellationToken)
    {
        var mode = a.OptionalString("mode") is { } m && QapiEnum<NewImageMode>.TryParse(m, out var parsed) ? parsed : NewImageMode.AbsolutePaths;
        await context.Graph.DriveBackupAsync(a.OptionalString("job-id"), a.RequiredString("device"), a.RequiredString("target"), Sync(a),
            a.OptionalString("format"), mode, a.OptionalString("bitmap"), a.OptionalBool("compress") ?? false, a.OptionalInt64("speed") ?? 0,
            JobCommands.OnError(a, "on-source-error"), JobCommands.OnError(a, "on-target-error"), cancellationToken).ConfigureAwait(false);
        return null;
    }

    private static async ValueTask<JsonNode?> BlockdevBackupAsync(QmpCommandContext context, JsonObject a, CancellationToken cancellationToken)
    {
        await context.Graph.BlockdevBackupAsync(a.OptionalString("job-id"), a.RequiredString("device"), a.RequiredString("target"), Sync(a),
            a.OptionalString("bitmap"), a.OptionalBool("compress") ?? false, a.OptionalInt64("speed") ?? 0,
            JobCommands.OnError(a, "on-source-error"), JobCommands.OnError(a, "on-target-error")).ConfigureAwait(false);
        return null;
    }

    /// <summary>The <c>sync</c> member (the schema has checked it).</summary>
    private static MirrorSyncMode Sync(JsonObject a) =>
        QapiEnum<MirrorSyncMode>.TryParse(a.RequiredString("sync"), out var sync) ? sync : MirrorSyncMode.Full;
}
