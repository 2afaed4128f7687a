using System.Globalization;
using System.Text;
using Block.Cli.Common;
using Block.Drivers;
using Block.Options;

namespace Block.Cli.Img;

/// <summary><c>blk create</c>: qemu-img create.</summary>
internal static class CreateCommand
{
    public static async Task<int> RunAsync(CliContext cli, string[] args)
    {
        var getopt = new GetOpt("F:b:f:ho:qu", ImgCommon.LongOptions());
        if (ImgCommon.Parse(cli, getopt, args) is not var (options, operands))
            return 1;
        await using var graph = cli.CreateGraph();
        var common = new CommonOptions(cli, graph);
        string? backing = null, backingFormat = null;
        bool unsafeBacking = false;
        var optionTexts = new List<string>();
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
                case "F":
                    backingFormat = arg;
                    break;
                case "b":
                    backing = arg;
                    break;
                case "o":
                    optionTexts.Add(arg!);
                    break;
                case "u":
                    unsafeBacking = true;
                    break;
            }
        }
        string format = common.Format ?? "raw";

        string? filename = operands.Count > 0 ? operands[0] : null;
        if (optionTexts.Any(IsHelp))
            return PrintOptionHelp(cli, graph, format, filename);
        if (filename is null)
            return Blk.Usage(cli, "Expecting image file name");
        if (operands.Count > 2)
            return Blk.Usage(cli, $"Unexpected argument: {operands[2]}");

        long? size = null;
        if (operands.Count == 2)
        {
            if (!SizeParser.TryParse(operands[1], out ulong parsed, out bool hexSuffix))
            {
                cli.Error("Invalid image size specified. You may use k, M, G, T, P or E suffixes for");
                cli.Error("kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
                return 1;
            }
            if (parsed > long.MaxValue)
            {
                cli.Error($"Invalid image size specified. Must be between 0 and {long.MaxValue}.");
                return 1;
            }
            if (hexSuffix)
                cli.Warning($"Using a multiplier suffix on hex numbers is deprecated: {operands[1]}");
            size = (long)parsed;
        }

        var driver = graph.Drivers.Find(format);
        if (driver is null)
        {
            cli.Error($"{filename}: Unknown file format '{format}'");
            return 1;
        }

        Dictionary<string, string> createOptions;
        try
        {
            createOptions = ParseOptionTexts(optionTexts);
        }
        catch (BlockOptionsException e)
        {
            cli.Error($"{filename}: {e.Message}");
            return 1;
        }
        if (backing != null)
            createOptions["backing_file"] = backing;
        if (backingFormat != null)
            createOptions["backing_fmt"] = backingFormat;
        if (size != null)
        {
            if (createOptions.ContainsKey("size"))
            {
                cli.Error($"{filename}: The image size must be specified only once");
                return 1;
            }
            createOptions["size"] = size.Value.ToString(CultureInfo.InvariantCulture);
        }

        var descriptors = graph.CreateOptionsFor(driver, filename);
        foreach (var key in createOptions.Keys)
        {
            if (!descriptors.Any(d => d.Name == key))
            {
                cli.Error($"{filename}: Invalid parameter '{key}'");
                return 1;
            }
        }
        if (createOptions.ContainsKey("backing_file") && !await CheckBackingAsync(cli, graph, filename, createOptions, unsafeBacking))
            return 1;
        if (!createOptions.ContainsKey("size"))
        {
            cli.Error($"{filename}: Image creation needs a size parameter");
            return 1;
        }
        if (createOptions.TryGetValue("size", out var sizeText) && !SizeParser.TryParse(sizeText, out _))
        {
            cli.Error($"{filename}: Parameter 'size' expects a non-negative number below 2^64");
            return 1;
        }
        // qemu-img parses number options with the option list, before it prints anything (as it does the size).
        foreach (var d in descriptors)
        {
            if (d.Type == CreateOptionType.Number && createOptions.TryGetValue(d.Name, out var text)
                && !long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _)
                && !ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out _))
            {
                cli.Error($"{filename}: Parameter '{d.Name}' expects a number");
                return 1;
            }
        }

        if (!common.Quiet)
            cli.Out.WriteLine(FormattingLine(filename, format, descriptors, createOptions));
        try
        {
            await graph.CreateImageAsync(format, filename, createOptions);
        }
        catch (BlockException e)
        {
            cli.Error($"{filename}: {e.Message}");
            return 1;
        }
        return 0;
    }

    /// <summary>
    /// What qemu-img does with a backing file before it creates an image: without <c>-u</c> it opens the backing image
    /// (named relative to the new image), which must work, and takes its size when none is given; a backing file
    /// without a format is refused, naming the format probing finds.
    /// </summary>
    private static async Task<bool> CheckBackingAsync(CliContext cli, Block.Graph.BlockGraph graph, string filename,
        Dictionary<string, string> createOptions, bool unsafeBacking)
    {
        string backing = createOptions["backing_file"];
        createOptions.TryGetValue("backing_fmt", out string? format);
        if (format is null && unsafeBacking)
        {
            cli.Error($"{filename}: Backing file specified without backing format");
            return false;
        }
        if (unsafeBacking)
            return true;
        string? dir = Path.GetDirectoryName(filename);
        string path = Path.IsPathRooted(backing) || string.IsNullOrEmpty(dir) || backing.StartsWith("json:", StringComparison.Ordinal)
            ? backing : Path.Combine(dir, backing);
        try
        {
            await using var image = await graph.OpenImageAsync(path, new Block.Graph.ImageOpenOptions
            {
                Format = format,
                AllowProbing = format is null,
                ReadOnly = true,
                ForceShare = true,
            });
            if (format is null)
            {
                // qemu-img ends this hint without a newline.
                cli.Err.Write($"{CliContext.Program}: {filename}: Backing file specified without backing format\nDetected format of {image.Root!.DriverName}.");
                return false;
            }
            if (!createOptions.ContainsKey("size"))
                createOptions["size"] = image.Length.ToString(CultureInfo.InvariantCulture);
            return true;
        }
        catch (BlockException e)
        {
            cli.Error($"{filename}: {e.Message}\nCould not open backing image.");
            return false;
        }
    }

    /// <summary>Parses one or more <c>-o</c> texts (QemuOpts: <c>a=b,c=d</c>, commas doubled inside values).</summary>
    internal static Dictionary<string, string> ParseOptionTexts(IEnumerable<string> texts)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var text in texts)
        {
            int pos = 0;
            while (pos < text.Length)
            {
                int eq = text.IndexOf('=', pos);
                int comma = text.IndexOf(',', pos);
                if (eq < 0 || (comma >= 0 && comma < eq))
                {
                    string flag = comma < 0 ? text[pos..] : text[pos..comma];
                    // QemuOpts' short form: "name" means name=on.
                    result[flag] = "on";
                    pos = comma < 0 ? text.Length : comma + 1;
                    continue;
                }
                string key = text[pos..eq];
                var value = new StringBuilder();
                pos = eq + 1;
                while (pos < text.Length)
                {
                    if (text[pos] == ',')
                    {
                        if (pos + 1 < text.Length && text[pos + 1] == ',')
                        {
                            value.Append(',');
                            pos += 2;
                            continue;
                        }
                        pos++;
                        break;
                    }
                    value.Append(text[pos++]);
                }
                if (key.Length == 0)
                    throw new BlockOptionsException("Invalid parameter ''");
                result[key] = value.ToString();
            }
        }
        return result;
    }

    /// <summary>
    /// <c>Formatting 'x', fmt=raw size=N …</c>: every option that was given or has a default, in the driver's
    /// declaration order.
    /// </summary>
    internal static string FormattingLine(string filename, string format, IReadOnlyList<CreateOptionDescriptor> descriptors, IReadOnlyDictionary<string, string> options)
    {
        var sb = new StringBuilder($"Formatting '{filename}', fmt={format}");
        foreach (var d in descriptors)
        {
            string? value = options.TryGetValue(d.Name, out var v) ? v : d.DefaultValue;
            if (value is null)
                continue;
            if (d.Type == CreateOptionType.Size && SizeParser.TryParse(value, out ulong bytes))
                value = bytes.ToString(CultureInfo.InvariantCulture);
            sb.Append(' ').Append(d.Name).Append('=').Append(value);
        }
        return sb.ToString();
    }

    internal static bool IsHelp(string optionText) =>
        optionText.Split(',').Any(p => p is "help" or "?");

    /// <summary><c>-o help</c>: the format's own options, or with a file name the format's and the protocol's.</summary>
    internal static int PrintOptionHelp(CliContext cli, Block.Graph.BlockGraph graph, string format, string? filename)
    {
        var driver = graph.Drivers.Find(format);
        if (driver is null)
        {
            cli.Error($"Unknown file format '{format}'");
            return 1;
        }
        if (!driver.CanCreate)
        {
            cli.Error($"Format driver '{format}' does not support image creation");
            return 1;
        }
        var list = graph.CreateOptionsFor(driver, filename).OrderBy(o => o.Name, StringComparer.Ordinal).ToList();
        cli.Out.WriteLine(filename is null ? $"Supported {format} options:" : "Supported options:");
        foreach (var o in list)
        {
            string type = o.Type switch
            {
                CreateOptionType.Size => "size",
                CreateOptionType.Bool => "bool (on/off)",
                CreateOptionType.Number => "num",
                _ => "str",
            };
            cli.Out.WriteLine($"  {$"{o.Name}=<{type}>",-22} - {o.Help}");
        }
        if (filename is null)
        {
            cli.Out.WriteLine();
            cli.Out.WriteLine("The protocol level may support further options.");
            cli.Out.WriteLine("Specify the target filename to include those options.");
        }
        return 0;
    }
}
