using System.Text.Json.Nodes;
using Block.Nbd.Server;
using Block.Options;
using Block.Qmp.Commands;

namespace Block.Cli.Serve;

/// <summary>
/// The QMP commands of QEMU's <c>qapi/block.json</c> NBD server, over an <see cref="NbdService"/>.
/// </summary>
/// <remarks>
/// They are registered by the daemon rather than by Block.Qmp, so that neither package depends on the other: an
/// embedder who wants QMP without NBD (or NBD without QMP) pulls only what it uses.
/// </remarks>
internal static class NbdCommands
{
    public static void Register(QmpCommandTable table, NbdService nbd)
    {
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
        table.Add("nbd-server-remove", async (_, a, _) =>
        {
            string mode = a.OptionalString("mode") ?? "safe";
            await nbd.RemoveExportAsync(a.RequiredString("name"), hard: mode == "hard").ConfigureAwait(false);
            return null;
        });
        table.Add("nbd-server-stop", async (_, _, _) =>
        {
            await nbd.StopAsync().ConfigureAwait(false);
            return null;
        });
    }

    private static readonly ValueTask<JsonNode?> Empty = ValueTask.FromResult<JsonNode?>(null);
}
