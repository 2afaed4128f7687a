using Block.Cli.Common;
using Block.Options;
using Block.Qapi;

namespace Block.Cli.Img;

/// <summary><c>blk resize</c>: qemu-img resize, with <c>+</c>/<c>-</c> relative sizes and <c>--shrink</c>.</summary>
internal static class ResizeCommand
{
    public static async Task<int> RunAsync(CliContext cli, string[] args)
    {
        // The size is always the last argument; it is taken out before option parsing so that "-1M" is not an option.
        if (args.Length < 2)
            return Blk.Usage(cli, "Not enough arguments");
        string sizeText = args[^1];
        var getopt = new GetOpt("f:hq", ImgCommon.LongOptions(("format", true, "f"), ("preallocation", true, "preallocation"), ("shrink", false, "shrink")));
        if (ImgCommon.Parse(cli, getopt, args[..^1]) is not var (options, operands))
            return 1;
        await using var graph = cli.CreateGraph();
        var common = new CommonOptions(cli, graph);
        bool shrink = false;
        var prealloc = PreallocMode.Off;
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
                case "shrink":
                    shrink = true;
                    break;
                case "preallocation":
                    if (!QapiEnum<PreallocMode>.TryParse(arg!, out prealloc))
                    {
                        cli.Error($"Invalid preallocation mode '{arg}'");
                        return 1;
                    }
                    break;
            }
        }
        if (operands.Count != 1)
            return Blk.Usage(cli, "Expecting image file name and size");

        int relative = sizeText.StartsWith('+') ? 1 : sizeText.StartsWith('-') ? -1 : 0;
        if (!SizeParser.TryParse(relative != 0 ? sizeText[1..] : sizeText, out ulong amount))
        {
            cli.Error("Parameter 'size' expects a non-negative number below 2^64");
            cli.Err.WriteLine("Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-");
            cli.Err.WriteLine("and exabytes, respectively.");
            return 1;
        }

        var backend = await ImgCommon.TryOpenAsync(cli, graph, new OpenArgs { Filename = operands[0], Format = common.Format, ImageOpts = common.ImageOpts });
        if (backend is null)
            return 1;

        long current = backend.Length;
        long size = relative switch
        {
            0 => unchecked((long)amount),
            > 0 => unchecked(current + (long)amount),
            _ => unchecked(current - (long)amount),
        };
        if (size <= 0)
        {
            cli.Error("New image size must be positive");
            return 1;
        }
        if (size < current && !shrink)
        {
            cli.Error("Use the --shrink option to perform a shrink operation.");
            cli.Warning("Shrinking an image will delete all data beyond the shrunken image's end. Before performing such an operation, make sure there is no important data there.");
            return 1;
        }
        if (prealloc != PreallocMode.Off && size < current)
        {
            cli.Error("Preallocation can only be used for growing images");
            return 1;
        }
        try
        {
            await backend.TruncateAsync(size, prealloc);
        }
        catch (BlockException e)
        {
            cli.Error(e.Message);
            return 1;
        }
        if (!common.Quiet)
            cli.Out.WriteLine("Image resized.");
        return 0;
    }
}
