using System.Text.Json.Nodes;
using Block.Nbd.Server;
using Block.Options;
using Block.Qmp;
using Block.Qmp.Commands;

namespace Block.Cli.Serve;

/// <summary>
/// The QMP commands of QEMU's <c>qapi/block.json</c> NBD server and 7.2's <c>qapi/block-export.json</c> (type nbd),
/// over an <see cref="NbdService"/>, and the <c>BLOCK_EXPORT_DELETED</c> event.
/// </summary>
/// <remarks>
/// They are registered by the daemon rather than by Block.Qmp, so that neither package depends on the other: an
/// embedder who wants QMP without NBD (or NBD without QMP) pulls only what it uses.
/// </remarks>
internal static class NbdCommands
{
    public static void Register(QmpServer server, NbdService nbd)
    {
        var table = server.Commands;
        nbd.ExportDeleted += id => server.Emit("BLOCK_EXPORT_DELETED", new JsonObject { ["id"] = id }, DateTimeOffset.Now);
        table.Add("nbd-server-start", (_, a, _) =>
        {
            nbd.Start(new OptionsReader(a, keyval: false));
            return Empty;
        });
        table.Add("nbd-server-add", (_, a, _) =>
        {
            nbd.AddExport(new OptionsReader(a, keyval: false));
            return Empty;
        });
        table.Add("block-export-add", (_, a, _) =>
        {
            var reader = new OptionsReader(a, keyval: false);
            reader.RequiredString("type"); // the schema allows nbd only
            nbd.AddExport(reader);
            return Empty;
        });
        // Both finish asynchronously, as in 7.2: the reply comes at once, BLOCK_EXPORT_DELETED once the clients are
        // gone (before the reply when there are none, since removal then completes synchronously).
        table.Add("nbd-server-remove", (_, a, _) => RemoveAsync(nbd, a.RequiredString("name"), a.OptionalString("mode")));
        table.Add("block-export-del", (_, a, _) => RemoveAsync(nbd, a.RequiredString("id"), a.OptionalString("mode")));
        table.Add("query-block-exports", (_, _, _) =>
        {
            var list = new JsonArray();
            foreach (var e in nbd.QueryExports())
                list.Add((JsonNode)new JsonObject { ["id"] = e.Id, ["type"] = "nbd", ["node-name"] = e.NodeName, ["shutting-down"] = e.ShuttingDown });
            return ValueTask.FromResult<JsonNode?>(list);
        });
        table.Add("nbd-server-stop", async (_, _, _) =>
        {
            await nbd.StopAsync().ConfigureAwait(false);
            return null;
        });
    }

    private static async ValueTask<JsonNode?> RemoveAsync(NbdService nbd, string id, string? mode)
    {
        var removal = await nbd.RemoveExportAsync(id, hard: mode == "hard").ConfigureAwait(false);
        // A failure while closing is the server's to report; the export is gone either way.
        _ = removal.ContinueWith(static t => _ = t.Exception, TaskScheduler.Default);
        return null;
    }

    private static readonly ValueTask<JsonNode?> Empty = ValueTask.FromResult<JsonNode?>(null);
}
