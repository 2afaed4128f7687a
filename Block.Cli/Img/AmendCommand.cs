using Block.Cli.Common;
using Block.Drivers;

namespace Block.Cli.Img;

/// <summary>
/// <c>blk amend</c>: qemu-img amend. Checks the <c>-o</c> options against what the image's format can change
/// (<see cref="BlockDriver.AmendOptions"/>) and hands them to the driver (<see cref="NodeDriver.AmendAsync"/>).
/// </summary>
internal static class AmendCommand
{
    public static async Task<int> RunAsync(CliContext cli, string[] args)
    {
        var longOptions = ImgCommon.LongOptions(("force", false, "force"));
        longOptions.Remove("force-share");
        var getopt = new GetOpt("ho:f:t:pq", longOptions);
        if (ImgCommon.Parse(cli, getopt, args) is not var (options, operands))
            return 1;
        await using var graph = cli.CreateGraph();
        var common = new CommonOptions(cli, graph);
        string? optionText = null;
        string cache = "writeback";
        bool progress = false, force = false;
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
                case "o":
                    if (!OptionList.TryAccumulate(cli, ref optionText, arg!))
                        return 1;
                    break;
                case "t":
                    cache = arg!;
                    break;
                case "p":
                    progress = true;
                    break;
                case "force":
                    force = true;
                    break;
            }
        }
        if (optionText is null)
            return Blk.Usage(cli, "Must specify options (-o)");

        var meter = new QemuProgress(progress && !common.Quiet ? cli.Out : null);
        int result = await AmendAsync(cli, graph, common, operands, optionText, cache, force, meter);
        meter.End();
        return result;
    }

    private static async Task<int> AmendAsync(CliContext cli, Block.Graph.BlockGraph graph, CommonOptions common, List<string> operands,
        string optionText, string cache, bool force, QemuProgress meter)
    {
        bool help = CreateCommand.IsHelp(optionText);
        if (common.Format != null && help)
            return PrintHelp(cli, graph, common.Format);
        if (operands.Count != 1)
        {
            cli.Error("Expecting one image file name");
            return 1;
        }
        if (!ImgCommon.TryParseCache(cli, cache, out var cacheMode))
            return 1;
        if (common.ImageOpts && common.Format != null)
        {
            cli.Error("--image-opts and --format are mutually exclusive");
            return 1;
        }
        var backend = await ImgCommon.TryOpenAsync(cli, graph, new OpenArgs
        {
            Filename = operands[0], Format = common.Format, ImageOpts = common.ImageOpts, Cache = cacheMode,
        });
        if (backend is null)
            return 1;
        var node = backend.Root!;
        if (help)
            return PrintHelp(cli, graph, node.DriverName);
        var driver = graph.Drivers.Get(node.DriverName);
        if (driver.AmendOptions.Count == 0)
        {
            cli.Error($"Format driver '{node.DriverName}' does not support option amendment");
            return 1;
        }

        Dictionary<string, string> amendOptions;
        try
        {
            amendOptions = CreateCommand.ParseOptionTexts([optionText]);
            CreateOptionValues.Normalise(driver.AmendOptions, amendOptions, cli.Warning);
        }
        catch (BlockOptionsException e)
        {
            cli.Error(e.Message);
            if (IsCreateOnly(driver, optionText))
                cli.Err.WriteLine("This option is only supported for image creation");
            return 1;
        }

        meter.Print(0);
        try
        {
            await node.Impl.AmendAsync(new ImageAmendRequest(amendOptions)
            {
                Force = force,
                Progress = (done, total) => meter.Print(100f * done / total),
            }, CancellationToken.None);
        }
        catch (BlockException e)
        {
            meter.Print(100);
            cli.Error(e.Message);
            return 1;
        }
        meter.Print(100);
        return 0;
    }

    /// <summary>True if the options are valid once the format's creation options count too (qemu-img's hint).</summary>
    private static bool IsCreateOnly(BlockDriver driver, string optionText)
    {
        try
        {
            var all = driver.AmendOptions.Concat(driver.CreateOptions.Where(c => driver.AmendOptions.All(a => a.Name != c.Name))).ToList();
            CreateOptionValues.Normalise(all, CreateCommand.ParseOptionTexts([optionText]), _ => { });
            return true;
        }
        catch (BlockOptionsException)
        {
            return false;
        }
    }

    private static int PrintHelp(CliContext cli, Block.Graph.BlockGraph graph, string format)
    {
        var driver = graph.Drivers.Find(format);
        if (driver is null)
        {
            cli.Error($"Unknown file format '{format}'");
            return 1;
        }
        if (driver.AmendOptions.Count == 0)
        {
            cli.Error($"Format driver '{format}' does not support option amendment");
            return 1;
        }
        cli.Out.WriteLine($"Amend options for '{format}':");
        CreateCommand.PrintOptionList(cli, driver.AmendOptions);
        return 0;
    }

    /// <summary>
    /// qemu-img's progress meter with its arithmetic: percentages in single precision, a line whenever the value moved
    /// by more than one point either way or is exactly 0 or 100, and a newline at the end.
    /// </summary>
    private sealed class QemuProgress(TextWriter? output)
    {
        private const float MinStep = 1.0f;
        private float _lastPrinted;

        public void Print(float percent)
        {
            if (output is null)
                return;
            if (percent > 100)
                percent = 100;
            if (percent > _lastPrinted + MinStep || percent < _lastPrinted - MinStep || percent == 100 || percent == 0)
            {
                _lastPrinted = percent;
                output.Write($"    ({CFormat.Fixed(percent, 2)}/100%)\r");
            }
        }

        public void End() => output?.Write("\n");
    }
}
