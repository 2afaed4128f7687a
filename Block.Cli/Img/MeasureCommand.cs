using Block.Cli.Common;
using Block.Drivers;
using Block.Graph;
using Block.Options;
using Block.Qapi;

namespace Block.Cli.Img;

/// <summary>
/// <c>blk measure</c>: qemu-img measure. How large an image of the output format would be, for a disk size or for the
/// contents of an input image; the format drivers compute it (<see cref="BlockDriver.MeasureAsync"/>).
/// </summary>
internal static class MeasureCommand
{
    public static async Task<int> RunAsync(CliContext cli, string[] args)
    {
        var getopt = new GetOpt("hf:O:o:l:U", ImgCommon.LongOptions(("output", true, "output"), ("size", true, "size")));
        List<(string Code, string? Argument)> options;
        List<string> operands;
        try
        {
            (options, operands) = getopt.Parse(args);
        }
        catch (GetOptException e)
        {
            // qemu-img measure answers a bad option with getopt's message and the help text, and succeeds.
            cli.Err.WriteLine($"measure: {e.GlibcMessage}");
            cli.Out.Write(HelpText.Text);
            return 0;
        }
        await using var graph = cli.CreateGraph();
        var common = new CommonOptions(cli, graph);
        string? outputFormat = null, optionText = null, snapshot = null;
        (string? Id, string? Name)? snapshotParts = null;
        bool json = false;
        long? size = null;
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
                case "O":
                    outputFormat = arg;
                    break;
                case "o":
                    if (!OptionList.TryAccumulate(cli, ref optionText, arg!))
                        return 1;
                    break;
                case "l":
                    if (arg!.StartsWith("snapshot.", StringComparison.Ordinal))
                    {
                        if (ParseSnapshotParam(cli, arg) is not { } parts)
                            return 1;
                        snapshotParts = parts;
                    }
                    else
                    {
                        snapshot = arg;
                    }
                    break;
                case "output":
                    if (!ImgCommon.TryParseOutput(cli, arg!, out json))
                        return 1;
                    break;
                case "size":
                    if (!TryParseSize(cli, arg!, out long parsed))
                        return 1;
                    size = parsed;
                    break;
            }
        }

        if (operands.Count > 1)
        {
            cli.Error("At most one filename argument is allowed.");
            return 1;
        }
        string? filename = operands.Count == 1 ? operands[0] : null;
        if (filename is null && (common.ImageOpts || common.Format != null || snapshot != null || snapshotParts != null))
        {
            cli.Error("--image-opts, -f, and -l require a filename argument.");
            return 1;
        }
        if (filename != null && size != null)
        {
            cli.Error("--size N cannot be used together with a filename.");
            return 1;
        }
        if (filename is null && size is null)
        {
            cli.Error("Either --size N or one filename must be specified.");
            return 1;
        }

        BlockNode? input = null;
        if (filename != null)
        {
            if (common.ImageOpts && common.Format != null)
            {
                cli.Error("--image-opts and --format are mutually exclusive");
                return 1;
            }
            var backend = await ImgCommon.TryOpenAsync(cli, graph, new OpenArgs
            {
                Filename = filename, Format = common.Format, ImageOpts = common.ImageOpts, ReadOnly = true, ForceShare = common.ForceShare,
            });
            if (backend is null)
                return 1;
            input = backend.Root!;
            if ((snapshot != null || snapshotParts != null) && !await TryLoadSnapshotAsync(cli, input, snapshot, snapshotParts))
                return 1;
        }

        string format = outputFormat ?? "raw";
        var driver = graph.Drivers.Find(format);
        if (driver is null)
        {
            cli.Error($"Unknown file format '{format}'");
            return 1;
        }
        if (driver.CreateOptions.Count == 0)
        {
            cli.Error($"Format driver '{format}' does not support image creation");
            return 1;
        }
        Dictionary<string, string> createOptions;
        try
        {
            createOptions = CreateCommand.ParseOptionTexts(optionText is null ? [] : [optionText]);
            CreateOptionValues.Normalise(graph.CreateOptionsFor(driver, string.Empty), createOptions, cli.Warning);
        }
        catch (BlockOptionsException e)
        {
            cli.Error(e.Message);
            cli.Error($"Invalid options for file format '{format}'");
            return 1;
        }
        if (size != null)
            createOptions["size"] = size.Value.ToString(System.Globalization.CultureInfo.InvariantCulture);

        BlockMeasureInfo info;
        try
        {
            info = await driver.MeasureAsync(new ImageCreateRequest(graph, string.Empty, createOptions), input, CancellationToken.None);
        }
        catch (BlockException e)
        {
            cli.Error(e.Message);
            return 1;
        }

        if (json)
        {
            cli.Out.Write(QemuJson.Pretty(QemuJson.ToNode(info, QapiJsonContext.Default.BlockMeasureInfo)) + "\n");
        }
        else
        {
            // QEMU prints the sizes unsigned.
            cli.Out.WriteLine($"required size: {unchecked((ulong)info.Required)}");
            cli.Out.WriteLine($"fully allocated size: {unchecked((ulong)info.FullyAllocated)}");
            if (info.Bitmaps is { } bitmaps)
                cli.Out.WriteLine($"bitmaps size: {unchecked((ulong)bitmaps)}");
        }
        return 0;
    }

    /// <summary><c>--size</c>: a size with suffixes, at most 2^63 − 1, with qemu-img's two messages.</summary>
    private static bool TryParseSize(CliContext cli, string text, out long size)
    {
        size = 0;
        if (!SizeParser.TryParse(text, out ulong parsed, out bool hexSuffix))
        {
            cli.Error("Invalid image size specified. You may use k, M, G, T, P or E suffixes for");
            cli.Error("kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
            return false;
        }
        if (parsed > long.MaxValue)
        {
            cli.Error($"Invalid image size specified. Must be between 0 and {long.MaxValue}.");
            return false;
        }
        if (hexSuffix)
            cli.Warning($"Using a multiplier suffix on hex numbers is deprecated: {text}");
        size = (long)parsed;
        return true;
    }

    /// <summary><c>-l snapshot.id=ID,snapshot.name=NAME</c>: either part may be left out; other keys are refused.</summary>
    internal static (string? Id, string? Name)? ParseSnapshotParam(CliContext cli, string text)
    {
        try
        {
            var parts = CreateCommand.ParseOptionTexts([text]);
            foreach (var key in parts.Keys)
            {
                if (key is not ("snapshot.id" or "snapshot.name"))
                    throw new BlockOptionsException($"Invalid parameter '{key}'");
            }
            return (parts.GetValueOrDefault("snapshot.id"), parts.GetValueOrDefault("snapshot.name"));
        }
        catch (BlockOptionsException e)
        {
            cli.Error(e.Message);
            cli.Error($"Failed in parsing snapshot param '{text}'");
            return null;
        }
    }

    /// <summary>
    /// Shows the snapshot instead of the current state: by id and/or name, or for a plain parameter the snapshot with
    /// that id, else the one with that name.
    /// </summary>
    internal static async Task<bool> TryLoadSnapshotAsync(CliContext cli, BlockNode node, string? idOrName, (string? Id, string? Name)? parts)
    {
        try
        {
            if (parts is var (id, name))
            {
                await node.LoadSnapshotAsync(id, name);
            }
            else
            {
                try
                {
                    await node.LoadSnapshotAsync(idOrName, null);
                }
                catch (BlockException e) when (e.Errno == Errno.ENOENT)
                {
                    await node.LoadSnapshotAsync(null, idOrName);
                }
            }
            return true;
        }
        catch (BlockException e)
        {
            string reason = e.Errno == Errno.ENOTSUP
                ? $"Block format '{node.DriverName}' used by device '' does not support temporarily loading internal snapshots"
                : e.Message;
            cli.Error($"Failed to load snapshot: {reason}");
            return false;
        }
    }
}
