using System.Text.Json.Nodes;
using Block.Cli.Common;
using Block.Qapi;

namespace Block.Cli.Img;

/// <summary><c>blk info</c>: qemu-img info.</summary>
internal static class InfoCommand
{
    public static async Task<int> RunAsync(CliContext cli, string[] args)
    {
        var getopt = new GetOpt("f:hU", ImgCommon.LongOptions(("format", true, "f"), ("output", true, "output"), ("backing-chain", false, "backing-chain")));
        if (ImgCommon.Parse(cli, getopt, args) is not var (options, operands))
            return 1;
        await using var graph = cli.CreateGraph();
        var common = new CommonOptions(cli, graph);
        bool json = false, chain = false;
        foreach (var (code, arg) in options)
        {
            if (common.Apply(code, arg))
            {
                if (common.Exit is { } exit)
                    return exit;
                continue;
            }
            switch (code)
            {
                case "backing-chain":
                    chain = true;
                    break;
                case "output":
                    if (!ImgCommon.TryParseOutput(cli, arg!, out json))
                        return 1;
                    break;
            }
        }
        if (operands.Count != 1)
            return Blk.Usage(cli, "Expecting one image file name");
        if (common.ImageOpts && common.Format != null)
        {
            cli.Error("--image-opts and --format are mutually exclusive");
            return 1;
        }

        // Like qemu-img, each image is opened on its own, without its backing file: a chain is followed by name.
        var args0 = new OpenArgs
        {
            Filename = operands[0],
            Format = common.Format,
            ImageOpts = common.ImageOpts,
            ReadOnly = true,
            ForceShare = common.ForceShare,
            NoBacking = true,
            NoIo = true,
        };
        var backend = await ImgCommon.TryOpenAsync(cli, graph, args0);
        if (backend is null)
            return 1;
        var infos = new List<ImageInfo> { backend.Root!.GetImageInfo() };
        var seen = new HashSet<string>(StringComparer.Ordinal) { infos[0].Filename };
        while (chain && infos[^1] is { FullBackingFilename: { } next } last)
        {
            if (!seen.Add(next))
            {
                cli.Error($"Backing file '{next}' creates an infinite loop.");
                return 1;
            }
            var image = await ImgCommon.TryOpenAsync(cli, graph, new OpenArgs
            {
                Filename = next,
                Format = last.BackingFilenameFormat,
                ReadOnly = true,
                ForceShare = common.ForceShare,
                NoBacking = true,
                NoIo = true,
            });
            if (image is null)
                return 1;
            infos.Add(image.Root!.GetImageInfo());
        }

        if (json)
        {
            var node = chain
                ? new JsonArray([.. infos.Select(i => QemuJson.ToNode(i, QapiJsonContext.Default.ImageInfo))])
                : QemuJson.ToNode(infos[0], QapiJsonContext.Default.ImageInfo);
            cli.Out.Write(QemuJson.Pretty(node) + "\n");
            return 0;
        }
        for (int i = 0; i < infos.Count; i++)
        {
            if (i > 0)
                cli.Out.WriteLine();
            WriteHuman(cli.Out, infos[i]);
        }
        return 0;
    }

    /// <summary>The human form of one image's information, as qemu-img prints it.</summary>
    internal static void WriteHuman(TextWriter w, ImageInfo info)
    {
        w.WriteLine($"image: {info.Filename}");
        w.WriteLine($"file format: {info.Format}");
        w.WriteLine($"virtual size: {QemuText.HumanSize((ulong)info.VirtualSize)} ({info.VirtualSize} bytes)");
        w.WriteLine($"disk size: {(info.ActualSize is { } a ? QemuText.HumanSize((ulong)a) : "unavailable")}");
        if (info.Encrypted == true)
            w.WriteLine("encrypted: yes");
        if (info.ClusterSize is { } cs)
            w.WriteLine($"cluster_size: {cs}");
        if (info.BackingFilename is { } bf)
        {
            w.Write($"backing file: {bf}");
            if (info.FullBackingFilename is { } full && full != bf)
                w.Write($" (actual path: {full})");
            w.WriteLine();
        }
        if (info.BackingFilenameFormat is { } bff)
            w.WriteLine($"backing file format: {bff}");
        if (info.Snapshots is { Count: > 0 } snapshots)
            SnapshotCommand.WriteList(w, snapshots);
        if (info.FormatSpecific is { } specific)
        {
            w.WriteLine("Format specific information:");
            var data = (JsonObject)QemuJson.ToNode(specific, QapiJsonContext.Default.ImageInfoSpecific)!["data"]!;
            WriteDump(w, data, 1);
        }
    }

    /// <summary>
    /// QEMU's human dump of a QAPI object: <c>key: value</c> in the order QEMU's dictionary iterates (the same hash order
    /// as its JSON output), dashes as spaces, nested objects indented.
    /// </summary>
    internal static void WriteDump(TextWriter w, JsonNode node, int indent)
    {
        string pad = new(' ', indent * 4);
        switch (node)
        {
            case JsonObject obj:
                foreach (var (key, value) in QemuJson.MemberOrder(obj))
                {
                    string name = key.Replace('-', ' ');
                    if (value is JsonObject or JsonArray)
                    {
                        w.WriteLine($"{pad}{name}:");
                        WriteDump(w, value, indent + 1);
                    }
                    else
                    {
                        w.WriteLine($"{pad}{name}: {Scalar(value)}");
                    }
                }
                break;
            case JsonArray array:
                for (int i = 0; i < array.Count; i++)
                {
                    var item = array[i];
                    if (item is JsonObject or JsonArray)
                    {
                        w.WriteLine($"{pad}[{i}]:");
                        WriteDump(w, item, indent + 1);
                    }
                    else
                    {
                        w.WriteLine($"{pad}[{i}]: {Scalar(item)}");
                    }
                }
                break;
        }
    }

    private static string Scalar(JsonNode? value) => value switch
    {
        null => "null",
        JsonValue v when v.GetValueKind() == System.Text.Json.JsonValueKind.String => v.GetValue<string>(),
        _ => value.ToJsonString(),
    };
}
