using Block.Cli.Common;
using Block.Drivers;
using Block.Qapi;

namespace Block.Cli.Img;

/// <summary>
/// <c>blk check</c>: qemu-img check. Exit codes: 0 clean, 1 could not check, 2 corruptions, 3 leaks only,
/// 63 the format has no check.
/// </summary>
internal static class CheckCommand
{
    public static async Task<int> RunAsync(CliContext cli, string[] args)
    {
        var getopt = new GetOpt("hf:r:T:qU", ImgCommon.LongOptions(("format", true, "f"), ("repair", true, "r"), ("output", true, "output")));
        if (ImgCommon.Parse(cli, getopt, args) is not var (options, operands))
            return 1;
        await using var graph = cli.CreateGraph();
        var common = new CommonOptions(cli, graph);
        bool json = false;
        var cache = CacheMode.Writeback;
        string? repair = null;
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
                case "r":
                    if (arg is not ("leaks" or "all"))
                        return Blk.Usage(cli, "Invalid option for -r");
                    repair = arg;
                    break;
                case "T":
                    if (!ImgCommon.TryParseCache(cli, arg!, out cache))
                        return 1;
                    break;
                case "output":
                    if (!ImgCommon.TryParseOutput(cli, arg!, out json))
                        return 1;
                    break;
            }
        }
        if (operands.Count != 1)
            return Blk.Usage(cli, "Expecting one image file name");

        var backend = await ImgCommon.TryOpenAsync(cli, graph, new OpenArgs
        {
            Filename = operands[0],
            Format = common.Format,
            ImageOpts = common.ImageOpts,
            ReadOnly = repair is null,
            ForceShare = common.ForceShare,
            Cache = cache,
            ForCheck = true,
        });
        if (backend is null)
            return 1;
        var mode = repair switch
        {
            "leaks" => CheckRepair.Leaks,
            "all" => CheckRepair.All,
            _ => CheckRepair.None,
        };
        var driver = backend.Root!.Impl;
        ImageCheck result;
        try
        {
            result = await driver.CheckAsync(mode, cli.Err);
            if (mode != CheckRepair.None && (result.CorruptionsFixed > 0 || result.LeaksFixed > 0))
            {
                // As qemu-img: say what was repaired, then report what a fresh check of the repaired image finds.
                if (!json && !common.Quiet)
                {
                    cli.Out.Write($"The following inconsistencies were found and repaired:\n\n    {result.LeaksFixed ?? 0} leaked clusters\n"
                        + $"    {result.CorruptionsFixed ?? 0} corruptions\n\nDouble checking the fixed image now...\n");
                }
                var repaired = result;
                result = await driver.CheckAsync(CheckRepair.None, cli.Err) with
                {
                    LeaksFixed = repaired.LeaksFixed,
                    CorruptionsFixed = repaired.CorruptionsFixed,
                };
            }
        }
        catch (BlockException e) when (e.Errno == Errno.ENOTSUP)
        {
            cli.Error(e.Message);
            return 63;
        }
        catch (BlockException e)
        {
            // A message of its own (a repair step that failed) comes first, as qemu-img's error_report does.
            string reason = ErrnoText.Describe(e.Errno);
            if (e.Message != reason)
                cli.Error(e.Message);
            cli.Error($"Check failed: {reason}");
            return 1;
        }
        // qemu-img names the image as it was given (with --image-opts, the option string).
        result = WithoutZeroCounts(result) with { Filename = operands[0] };
        if (json)
            cli.Out.Write(QemuJson.Pretty(QemuJson.ToNode(result, QapiJsonContext.Default.ImageCheck)) + "\n");
        else if (!common.Quiet)
            WriteHuman(cli.Out, result);
        if (result.CheckErrors > 0)
        {
            cli.Error("Check failed");
            return 1;
        }
        if (result.Corruptions > 0)
            return 2;
        return result.Leaks > 0 ? 3 : 0;
    }

    /// <summary>qemu-img reports the optional counts only when they are not zero.</summary>
    private static ImageCheck WithoutZeroCounts(ImageCheck r) => r with
    {
        ImageEndOffset = NonZero(r.ImageEndOffset),
        Corruptions = NonZero(r.Corruptions),
        Leaks = NonZero(r.Leaks),
        CorruptionsFixed = NonZero(r.CorruptionsFixed),
        LeaksFixed = NonZero(r.LeaksFixed),
        TotalClusters = NonZero(r.TotalClusters),
        AllocatedClusters = NonZero(r.AllocatedClusters),
        FragmentedClusters = NonZero(r.FragmentedClusters),
        CompressedClusters = NonZero(r.CompressedClusters),
    };

    private static long? NonZero(long? value) => value is 0 ? null : value;

    private static void WriteHuman(TextWriter w, ImageCheck r)
    {
        long corruptions = r.Corruptions ?? 0, leaks = r.Leaks ?? 0;
        if (corruptions == 0 && leaks == 0 && r.CheckErrors == 0)
            w.WriteLine("No errors were found on the image.");
        if (corruptions > 0)
            w.WriteLine($"\n{corruptions} errors were found on the image.\nData may be corrupted, or further writes to the image may corrupt it.");
        if (leaks > 0)
            w.WriteLine($"\n{leaks} leaked clusters were found on the image.\nThis means waste of disk space, but no harm to data.");
        if (r.CheckErrors > 0)
            w.WriteLine($"\n{r.CheckErrors} internal errors have occurred during the check.");
        if (r.TotalClusters is { } total && r.AllocatedClusters is { } allocated)
        {
            w.WriteLine(string.Create(System.Globalization.CultureInfo.InvariantCulture,
                $"{allocated}/{total} = {allocated * 100.0 / total:F2}% allocated, {(allocated == 0 ? 0 : (r.FragmentedClusters ?? 0) * 100.0 / allocated):F2}% fragmented, {(allocated == 0 ? 0 : (r.CompressedClusters ?? 0) * 100.0 / allocated):F2}% compressed clusters"));
        }
        if (r.ImageEndOffset is { } end)
            w.WriteLine($"Image end offset: {end}");
    }
}
