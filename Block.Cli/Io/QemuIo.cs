using Block.Cli.Common;
using Block.Qapi;

namespace Block.Cli.Io;

/// <summary>
/// <c>blk io</c>: qemu-io. Runs each <c>-c</c> command in order (or reads commands from stdin), printing qemu-io's
/// lines; exits 1 if any command failed.
/// </summary>
internal static class QemuIo
{
    public const string UsageText = """
Usage: blk io [OPTIONS]... [-c STRING]... [file]
Block disk exerciser (qemu-io compatible)

  --object OBJECTDEF   define an object such as 'secret' for
                       passwords and/or encryption keys
  --image-opts         treat file as option string
  -c, --cmd STRING     execute command with its arguments
                       from the given string
  -f, --format FMT     specifies the block driver to use
  -r, --read-only      export read-only
  -n, --nocache        disable host cache, short for -t none
  -C, --copy-on-read   enable copy-on-read
  -m, --misalign       misalign allocations for O_DIRECT
  -k, --native-aio     use kernel AIO implementation
  -i, --aio=MODE       use AIO mode (threads, inline, native or io_uring)
  -t, --cache=MODE     use the given cache mode for the image
  -d, --discard=MODE   use the given discard mode for the image
  -U, --force-share    force shared permissions
  -h, --help           display this help and exit
  -V, --version        output version information and exit

See 'blk io -c help' for information on available commands.

""";

    public static async Task<int> RunAsync(CliContext cli, string[] args)
    {
        var getopt = new GetOpt("hVc:d:f:rsnCmkt:T:Ui:", new Dictionary<string, (bool, string)>
        {
            ["help"] = (false, "h"),
            ["version"] = (false, "V"),
            ["cmd"] = (true, "c"),
            ["format"] = (true, "f"),
            ["read-only"] = (false, "r"),
            ["snapshot"] = (false, "s"),
            ["nocache"] = (false, "n"),
            ["copy-on-read"] = (false, "C"),
            ["misalign"] = (false, "m"),
            ["native-aio"] = (false, "k"),
            ["discard"] = (true, "d"),
            ["cache"] = (true, "t"),
            ["trace"] = (true, "T"),
            ["object"] = (true, "object"),
            ["image-opts"] = (false, "image-opts"),
            ["force-share"] = (false, "U"),
            ["aio"] = (true, "i"),
        });
        List<(string Code, string? Argument)> options;
        List<string> operands;
        try
        {
            (options, operands) = getopt.Parse(args);
        }
        catch (GetOptException e)
        {
            cli.Error(e.GlibcMessage);
            cli.Out.Write(UsageText);
            return 1;
        }

        await using var graph = cli.CreateGraph();
        await using var session = new IoSession(cli, graph);
        var defaults = session.Defaults;
        var commands = new List<string>();
        foreach (var (code, arg) in options)
        {
            switch (code)
            {
                case "h":
                    cli.Out.Write(UsageText);
                    return 0;
                case "V":
                    cli.Out.WriteLine(Blk.Version);
                    return 0;
                case "c":
                    commands.Add(arg!);
                    break;
                case "f":
                    defaults = defaults with { Format = arg };
                    break;
                case "r":
                    defaults = defaults with { ReadOnly = true };
                    break;
                case "s":
                    cli.Error("snapshot mode (-s) needs a qcow2 overlay, which this build cannot create");
                    return 1;
                case "n":
                    defaults = defaults with { Cache = defaults.Cache with { Direct = true, WriteThrough = false } };
                    break;
                case "C":
                    break;
                case "m":
                    session.Misalign = true;
                    break;
                case "k":
                    defaults = defaults with { Aio = BlockdevAioOptions.Native };
                    break;
                case "i":
                    if (!QapiEnum<BlockdevAioOptions>.TryParse(arg!, out var aio))
                    {
                        cli.Error($"Invalid aio option: {arg}");
                        return 1;
                    }
                    defaults = defaults with { Aio = aio };
                    break;
                case "d":
                    if (!TryParseDiscard(arg!, out var discard))
                    {
                        cli.Error($"Invalid discard option: {arg}");
                        return 1;
                    }
                    defaults = defaults with { Discard = discard };
                    break;
                case "t":
                    if (!CacheMode.TryParse(arg!, out var cache))
                    {
                        cli.Error($"Invalid cache option: {arg}");
                        return 1;
                    }
                    defaults = defaults with { Cache = cache };
                    break;
                case "T":
                    cli.Warning("tracing is not supported; -T ignored");
                    break;
                case "U":
                    defaults = defaults with { ForceShare = true };
                    break;
                case "image-opts":
                    defaults = defaults with { ImageOpts = true };
                    break;
                case "object":
                    try
                    {
                        ObjectOption.Add(graph, arg!);
                    }
                    catch (BlockException e)
                    {
                        cli.Error(e.Message);
                        return 1;
                    }
                    break;
            }
        }
        if (defaults.ImageOpts && defaults.Format != null)
        {
            cli.Error("--image-opts and -f are mutually exclusive");
            return 1;
        }
        if (operands.Count > 1)
        {
            cli.Out.Write(UsageText);
            return 1;
        }
        session.Defaults = defaults;
        if (defaults.Aio == BlockdevAioOptions.Native && !defaults.Cache.Direct && operands.Count == 1)
        {
            cli.Error($"can't open device {operands[0]}: aio=native was specified, but it requires cache.direct=on, which was not specified.");
            return 1;
        }
        if (operands.Count == 1 && !await session.OpenAsync(defaults with { Filename = operands[0] }))
            return 1;

        bool failed = false;
        if (commands.Count > 0)
        {
            foreach (var c in commands)
            {
                var (ok, quit) = await IoCommands.ExecuteAsync(session, c);
                failed |= !ok;
                if (quit)
                    break;
            }
        }
        else
        {
            while (true)
            {
                cli.Out.Write("qemu-io> ");
                await cli.Out.FlushAsync();
                string? line = await cli.In.ReadLineAsync();
                if (line is null)
                    break;
                var (ok, quit) = await IoCommands.ExecuteAsync(session, line);
                failed |= !ok;
                if (quit)
                    break;
            }
        }
        return failed ? 1 : 0;
    }

    internal static bool TryParseDiscard(string text, out BlockdevDiscardOptions discard)
    {
        switch (text)
        {
            case "off":
            case "ignore":
                discard = BlockdevDiscardOptions.Ignore;
                return true;
            case "on":
            case "unmap":
                discard = BlockdevDiscardOptions.Unmap;
                return true;
            default:
                discard = default;
                return false;
        }
    }
}
