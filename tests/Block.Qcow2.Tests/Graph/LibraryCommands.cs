using System.Text.Json.Nodes;
using Block.Graph;
using Block.Qapi;

namespace Block.Qcow2.Tests.Graph;

/// <summary>
/// The graph commands a test sends to QEMU, sent to the library instead: each QMP command calls its
/// <see cref="BlockGraph"/> method and the outcome comes back in QMP's reply shape, so a test compares the two
/// daemons reply for reply. (The QMP package's dispatcher does this for real; this shim only covers the commands the
/// graph tests use and does no argument validation of its own.)
/// </summary>
internal static class LibraryCommands
{
    public static async Task<JsonObject> ExecuteAsync(BlockGraph graph, string command, JsonObject? args)
    {
        args ??= [];
        try
        {
            switch (command)
            {
                case "blockdev-add":
                    await graph.AddNodeAsync(graph.Parser.ParseJson((JsonObject)args.DeepClone()));
                    break;
                case "blockdev-del":
                case "x-blockdev-del":
                    await graph.DeleteNodeAsync(Str(args, "node-name")!);
                    break;
                case "block_resize":
                    await graph.ResizeAsync(Str(args, "device"), Str(args, "node-name"), (long)args["size"]!);
                    break;
                case "block-set-write-threshold":
                    graph.SetWriteThreshold(Str(args, "node-name")!, args["write-threshold"]!.GetValue<ulong>());
                    break;
                case "block-dirty-bitmap-add":
                    await graph.AddDirtyBitmapAsync(Str(args, "node")!, Str(args, "name")!, (uint?)args["granularity"],
                        (bool?)args["persistent"], (bool?)args["disabled"]);
                    break;
                case "block-dirty-bitmap-remove":
                    await graph.RemoveDirtyBitmapAsync(Str(args, "node")!, Str(args, "name")!);
                    break;
                case "block-dirty-bitmap-clear":
                    graph.ClearDirtyBitmap(Str(args, "node")!, Str(args, "name")!);
                    break;
                case "change-backing-file":
                    await graph.ChangeBackingFileAsync(Str(args, "device")!, Str(args, "image-node-name")!, Str(args, "backing-file")!);
                    break;
                case "blockdev-snapshot-sync":
                    NewImageMode? mode = null;
                    if (Str(args, "mode") is { } m)
                        mode = QapiEnum<NewImageMode>.TryParse(m, out var parsed) ? parsed : throw new InvalidOperationException(m);
                    await graph.SnapshotSyncAsync(Str(args, "device"), Str(args, "node-name"), Str(args, "snapshot-file")!,
                        Str(args, "snapshot-node-name"), Str(args, "format"), mode);
                    break;
                case "blockdev-snapshot":
                    await graph.SnapshotAsync(Str(args, "node")!, Str(args, "overlay")!);
                    break;
                case "x-blockdev-change":
                    await graph.ChangeChildAsync(Str(args, "parent")!, Str(args, "child"), Str(args, "node"));
                    break;
                default:
                    throw new InvalidOperationException($"the test shim does not know {command}");
            }
            return new JsonObject { ["return"] = new JsonObject() };
        }
        catch (BlockException e)
        {
            return new JsonObject { ["error"] = new JsonObject { ["class"] = e.ErrorClass.ToString(), ["desc"] = e.Message } };
        }
    }

    private static string? Str(JsonObject args, string name) => (string?)args[name];
}
