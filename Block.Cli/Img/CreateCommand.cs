using System.Globalization;
using System.Text;
using Block.Cli.Common;
using Block.Drivers;
using Block.Graph;
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
        if (!driver.CanCreate)
        {
            cli.Error($"{filename}: Format driver '{format}' does not support image creation");
            return 1;
        }

        var descriptors = graph.CreateOptionsFor(driver, filename);
        Dictionary<string, string> createOptions;
        try
        {
            createOptions = ParseOptionTexts(optionTexts);
            CreateOptionValues.Normalise(descriptors, createOptions, cli.Warning);
        }
        catch (BlockOptionsException e)
        {
            cli.Error($"{filename}: {e.Message}");
            return 1;
        }
        bool takesBacking = descriptors.Any(d => d.Name == "backing_file");
        if (backing != null)
        {
            if (!takesBacking)
            {
                cli.Error($"{filename}: Backing file not supported for file format '{format}'");
                return 1;
            }
            createOptions["backing_file"] = backing;
        }
        if (backingFormat != null)
        {
            if (!descriptors.Any(d => d.Name == "backing_fmt"))
            {
                cli.Error($"{filename}: Backing file format not supported for file format '{format}'");
                return 1;
            }
            createOptions["backing_fmt"] = backingFormat;
        }
        if (size != null)
        {
            if (createOptions.ContainsKey("size"))
            {
                cli.Error($"{filename}: The image size must be specified only once");
                return 1;
            }
            createOptions["size"] = size.Value.ToString(CultureInfo.InvariantCulture);
        }

        if (createOptions.TryGetValue("backing_file", out var backingFile)
            && await CheckBackingAsync(cli, graph, filename, backingFile, createOptions, unsafeBacking) is false)
        {
            return 1;
        }
        if (!createOptions.ContainsKey("size"))
        {
            cli.Error($"{filename}: Image creation needs a size parameter");
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
    /// qemu-img's checks of a backing file: not the image itself, its format given, and (unless <c>-u</c>) openable,
    /// giving the size when none was given. Prints the error and returns false.
    /// </summary>
    private static async Task<bool> CheckBackingAsync(CliContext cli, BlockGraph graph, string filename, string backing,
        Dictionary<string, string> createOptions, bool unsafeBacking)
    {
        if (backing == filename)
        {
            cli.Error($"{filename}: Error: Trying to create an image with the same filename as the backing file");
            return false;
        }
        createOptions.TryGetValue("backing_fmt", out var backingFormat);
        if (backingFormat is null && unsafeBacking)
        {
            cli.Error($"{filename}: Backing file specified without backing format");
            return false;
        }
        if (unsafeBacking)
            return true;

        string path = BackingPath(filename, backing);
        BlockBackend image;
        try
        {
            image = await graph.OpenImageAsync(path, new ImageOpenOptions
            {
                // As qemu-img: only the size and format are needed, so an encrypted backing file opens without its key.
                Format = backingFormat, AllowProbing = backingFormat is null, ReadOnly = true, ForceShare = true, NoBacking = true, NoIo = true,
            });
        }
        catch (BlockException e)
        {
            cli.Error($"{filename}: {e.Message}");
            cli.Err.WriteLine("Could not open backing image.");
            return false;
        }
        await using (image)
        {
            if (backingFormat is null)
            {
                // QEMU prints the detected format as a hint without a final newline.
                cli.Error($"{filename}: Backing file specified without backing format");
                cli.Err.Write($"Detected format of {image.Root!.DriverName}.");
                return false;
            }
            if (!createOptions.ContainsKey("size"))
                createOptions["size"] = image.Length.ToString(CultureInfo.InvariantCulture);
        }
        return true;
    }

    /// <summary>A relative backing file name is relative to the new image's directory, as QEMU resolves it.</summary>
    private static string BackingPath(string filename, string backing)
    {
        if (Path.IsPathRooted(backing) || backing.StartsWith("json:", StringComparison.Ordinal))
            return backing;
        string? dir = Path.GetDirectoryName(filename);
        return string.IsNullOrEmpty(dir) ? backing : dir + "/" + backing;
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

    /// <summary>One line per option, sorted by name, as QEMU's <c>qemu_opts_print_help</c> prints them.</summary>
    internal static void PrintOptionList(CliContext cli, IEnumerable<CreateOptionDescriptor> options)
    {
        foreach (var o in options.OrderBy(o => o.Name, StringComparer.Ordinal))
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
        cli.Out.WriteLine(filename is null ? $"Supported {format} options:" : "Supported options:");
        PrintOptionList(cli, graph.CreateOptionsFor(driver, filename));
        if (filename is null)
        {
            cli.Out.WriteLine();
            cli.Out.WriteLine("The protocol level may support further options.");
            cli.Out.WriteLine("Specify the target filename to include those options.");
        }
        return 0;
    }
}
