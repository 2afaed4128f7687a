using Block.Cli.Common;
using Block.Graph;
using Block.Options;

namespace Block.Cli.Img;

/// <summary>What the qemu-img style commands share: option parsing, opening with qemu-img's messages.</summary>
internal static class ImgCommon
{
    /// <summary>Long options every image command takes.</summary>
    public static Dictionary<string, (bool, string)> LongOptions(params (string Name, bool HasArgument, string Code)[] extra)
    {
        var d = new Dictionary<string, (bool, string)>(StringComparer.Ordinal)
        {
            ["help"] = (false, "h"),
            ["object"] = (true, "object"),
            ["image-opts"] = (false, "image-opts"),
            ["force-share"] = (false, "U"),
        };
        foreach (var (name, hasArg, code) in extra)
            d[name] = (hasArg, code);
        return d;
    }

    /// <summary>Parses arguments; on a getopt error prints qemu-img's message and returns null.</summary>
    public static (List<(string Code, string? Argument)> Options, List<string> Operands)? Parse(CliContext cli, GetOpt getopt, string[] args)
    {
        try
        {
            return getopt.Parse(args);
        }
        catch (GetOptException e)
        {
            Blk.Usage(cli, e.QemuImgMessage);
            return null;
        }
    }

    /// <summary>Opens an image, printing <c>Could not open 'x': reason</c> on failure.</summary>
    public static async Task<BlockBackend?> TryOpenAsync(CliContext cli, BlockGraph graph, OpenArgs args)
    {
        try
        {
            return await ImageOpener.OpenAsync(cli, graph, args);
        }
        catch (BlockException e)
        {
            cli.Error($"Could not open '{args.Filename}': {e.Message}");
            return null;
        }
    }

    /// <summary>Adds a <c>--object</c>; prints the error and returns false if it is bad.</summary>
    public static bool AddObject(CliContext cli, BlockGraph graph, string text)
    {
        try
        {
            ObjectOption.Add(graph, text);
            return true;
        }
        catch (BlockException e)
        {
            cli.Error(e.Message);
            return false;
        }
    }

    /// <summary>Parses <c>--output</c>; prints qemu-img's error for anything but human and json.</summary>
    public static bool TryParseOutput(CliContext cli, string value, out bool json)
    {
        json = value == "json";
        if (value is "json" or "human")
            return true;
        cli.Error("--output must be used with human or json as argument.");
        return false;
    }

    /// <summary>Parses a size argument; prints <c>Invalid {what} specified. You may use k, M, G…</c> on failure.</summary>
    public static bool TryParseSize(CliContext cli, string text, string what, out long value)
    {
        value = 0;
        if (SizeParser.TryParse(text, out ulong v, out bool hexSuffix) && v <= long.MaxValue)
        {
            if (hexSuffix)
                cli.Warning($"Using a multiplier suffix on hex numbers is deprecated: {text}");
            value = (long)v;
            return true;
        }
        cli.Error($"Invalid {what} specified. You may use k, M, G, T, P or E suffixes for");
        cli.Error("kilobytes, megabytes, gigabytes, terabytes, petabytes and exabytes.");
        return false;
    }

    /// <summary>Parses a cache mode; prints <c>Invalid cache option: x</c> on failure.</summary>
    public static bool TryParseCache(CliContext cli, string text, out CacheMode mode)
    {
        if (CacheMode.TryParse(text, out mode))
            return true;
        cli.Error($"Invalid cache option: {text}");
        return false;
    }
}
