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

        var backend = await ImgCommon.TryOpenAsync(cli, graph, new OpenArgs
        {
            Filename = operands[0],
            Format = common.Format,
            ImageOpts = common.ImageOpts,
            ReadOnly = true,
            ForceShare = common.ForceShare,
            NoIo = true,
        });
        if (backend is null)
            return 1;

        var info = backend.Root!.GetImageInfo(backingChain: chain);
        if (json)
        {
            var node = chain ? ChainArray(info) : QemuJson.ToNode(info, QapiJsonContext.Default.ImageInfo);
            cli.Out.Write(QemuJson.Pretty(node) + "\n");
            return 0;
        }
        bool first = true;
        for (var i = info; i != null; i = chain ? i.BackingImage : null)
        {
            if (!first)
                cli.Out.WriteLine();
            first = false;
            WriteHuman(cli.Out, i);
        }
        return 0;
    }

    private static JsonArray ChainArray(ImageInfo info)
    {
        var array = new JsonArray();
        for (var i = info; i != null; i = i.BackingImage)
        {
            var node = (JsonObject)QemuJson.ToNode(i with { BackingImage = null }, QapiJsonContext.Default.ImageInfo)!;
            array.Add(node);
        }
        return array;
    }

    /// <summary>The human form of one image's information, as qemu-img prints it.</summary>
    internal static void WriteHuman(TextWriter w, ImageInfo info)
    {
        w.WriteLine($"image: {info.Filename}");
        w.WriteLine($"file format: {info.Format}");
        w.WriteLine($"virtual size: {QemuText.HumanSize((ulong)info.VirtualSize)} ({info.VirtualSize} bytes)");
        w.WriteLine($"disk size: {(info.ActualSize is { } a ? QemuText.HumanSize((ulong)a) : "unavailable")}");
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
        if (info.Encrypted == true)
            w.WriteLine("encrypted: yes");
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
