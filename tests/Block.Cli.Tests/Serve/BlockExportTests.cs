using System.Text.Json.Nodes;
using Block.TestSupport;

namespace Block.Cli.Tests.Serve;

/// <summary>
/// QEMU 7.2's <c>block-export-add</c>, <c>block-export-del</c> (safe and hard, finishing with
/// <c>BLOCK_EXPORT_DELETED</c>) and <c>query-block-exports</c> for NBD exports, side by side with
/// qemu-storage-daemon, with a qemu-io session holding an export open.
/// </summary>
public sealed class BlockExportTests
{
    [Fact]
    public async Task Block_export_commands_answer_and_signal_as_qemu_storage_daemon_does()
    {
        using var dir = new TempDirectory();
        string image = dir.File("disk.qcow2");
        QemuImg.Create("qcow2", image, "16M");
        string[] blockdevs = ["--blockdev", $"driver=file,node-name=file0,filename={image}", "--blockdev", "driver=qcow2,node-name=fmt0,file=file0"];

        async Task<List<string>> SessionAsync(QemuStorageDaemon daemon, string socket)
        {
            var lines = new List<string>();
            async Task Qmp(string command, JsonObject? arguments = null)
            {
                var reply = await daemon.Qmp.ExecuteAsync(command, arguments);
                lines.Add($"{command}: {reply.ToJsonString().Replace(socket, "SOCKET", StringComparison.Ordinal)}");
            }
            async Task Deleted()
            {
                var e = await daemon.Qmp.WaitEventAsync("BLOCK_EXPORT_DELETED");
                lines.Add($"event: {e["data"]!.ToJsonString()}");
            }
            JsonObject Export(string id, string node, string? name = null)
            {
                var o = new JsonObject { ["type"] = "nbd", ["id"] = id, ["node-name"] = node };
                if (name != null)
                    o["name"] = name;
                return o;
            }
            await Qmp("block-export-add", Export("e0", "fmt0"));
            await Qmp("nbd-server-start", new JsonObject { ["addr"] = new JsonObject { ["type"] = "unix", ["data"] = new JsonObject { ["path"] = socket } } });
            await Qmp("block-export-add", Export("e0", "fmt0"));
            await Qmp("block-export-add", Export("e0", "fmt0", "other"));
            await Qmp("block-export-add", Export("e1", "nosuch"));
            var full = Export("e3", "fmt0", "d");
            full["writable"] = true;
            full["description"] = "dd";
            full["bitmaps"] = new JsonArray();
            await Qmp("block-export-add", full);
            await Qmp("query-block-exports");
            await Qmp("block-export-del", new JsonObject { ["id"] = "nosuch" });
            await Qmp("block-export-del", new JsonObject { ["id"] = "e0" });
            await Deleted();
            await Qmp("query-block-exports");
            await Qmp("nbd-server-remove", new JsonObject { ["name"] = "d" });

            // A client on export d: safe removal refuses, hard removal disconnects it.
            var client = ProcessRunner.Start(QemuIo.Path, ["-f", "raw", $"nbd+unix:///d?socket={socket}"]);
            try
            {
                await client.StandardInput.WriteLineAsync("write -P 0x33 0 4k");
                await client.StandardInput.FlushAsync();
                string? line;
                while ((line = await client.StandardOutput.ReadLineAsync()) != null && !line.Contains("wrote 4096/4096", StringComparison.Ordinal))
                {
                }
                lines.Add($"client wrote: {line != null}");
                await Qmp("block-export-del", new JsonObject { ["id"] = "e3" });
                await Qmp("block-export-del", new JsonObject { ["id"] = "e3", ["mode"] = "hard" });
                await Deleted();
                await Qmp("query-block-exports");
            }
            finally
            {
                client.StandardInput.Close();
                if (!client.WaitForExit(TimeSpan.FromSeconds(30)))
                    client.Kill();
            }
            await Qmp("block-export-add", Export("e4", "fmt0", "d4"));
            await Qmp("nbd-server-stop");
            await Deleted();
            await Qmp("query-block-exports");
            return lines;
        }

        List<string> ours, theirs;
        await using (var blk = await BlkServe.StartAsync(blockdevs))
            ours = await SessionAsync(blk, dir.File("ours.sock"));
        await using (var qsd = await QemuStorageDaemon.StartAsync(blockdevs))
            theirs = await SessionAsync(qsd, dir.File("theirs.sock"));
        Assert.Equal(string.Join("\n", theirs), string.Join("\n", ours));
        Assert.Contains("client wrote: True", ours);
    }
}
