using System.Globalization;
using Block.Cli.Common;
using Block.Qapi;

namespace Block.Cli.Img;

/// <summary>
/// <c>blk bench</c>: qemu-img bench. <c>count</c> requests of <c>-s</c> bytes, <c>-d</c> in flight, starting at
/// <c>-o</c> and advancing by <c>-S</c> (wrapping at the end of the image), timed end to end. Adds <c>-i inline</c>,
/// and <c>--pattern-random</c> (with <c>--seed=N</c>): offsets drawn at random between <c>-o</c> and the end of the
/// image, aligned to the request size, the same sequence for the same seed.
/// </summary>
internal static class BenchCommand
{
    public static async Task<int> RunAsync(CliContext cli, string[] args)
    {
        var getopt = new GetOpt("hc:d:f:ni:o:qs:S:t:wU", ImgCommon.LongOptions(
            ("flush-interval", true, "flush-interval"), ("no-drain", false, "no-drain"), ("pattern", true, "pattern"),
            ("pattern-random", false, "pattern-random"), ("seed", true, "seed")));
        if (ImgCommon.Parse(cli, getopt, args) is not var (options, operands))
            return 1;
        await using var graph = cli.CreateGraph();
        var common = new CommonOptions(cli, graph);
        bool write = false, drain = true;
        int count = 75000, depth = 64, bufferSize = 4096;
        int? step = null;
        long offset = 0;
        int flushInterval = 0;
        byte pattern = 0;
        bool random = false;
        ulong seed = 1;
        var cache = CacheMode.Writeback;
        BlockdevAioOptions? aio = null;
        foreach (var (code, arg) in options)
        {
            // qemu-img bench takes -q and prints everything anyway.
            if (common.Apply(code, arg))
            {
                if (common.Exit is { } exit)
                    return exit;
                continue;
            }
            switch (code)
            {
                case "c":
                    if (!int.TryParse(arg, NumberStyles.None, CultureInfo.InvariantCulture, out count))
                    {
                        cli.Error("Invalid request count specified");
                        return 1;
                    }
                    break;
                case "d":
                    if (!int.TryParse(arg, NumberStyles.None, CultureInfo.InvariantCulture, out depth) || depth < 1)
                    {
                        // qemu-img accepts 0 and then waits forever; a depth of 0 can never issue a request.
                        cli.Error("Invalid queue depth specified");
                        return 1;
                    }
                    break;
                case "n":
                    aio = BlockdevAioOptions.Native;
                    break;
                case "i":
                    if (!QapiEnum<BlockdevAioOptions>.TryParse(arg!, out var parsedAio))
                    {
                        cli.Error($"Invalid aio option: {arg}");
                        return 1;
                    }
                    aio = parsedAio;
                    break;
                case "o":
                    if (!ImgCommon.TryParseSize(cli, arg!, "offset", out offset))
                        return 1;
                    break;
                case "s":
                    if (!ImgCommon.TryParseSize(cli, arg!, "buffer size", out long size) || size > int.MaxValue)
                        return 1;
                    bufferSize = (int)size;
                    break;
                case "S":
                    if (!ImgCommon.TryParseSize(cli, arg!, "step_size", out long stepSize) || stepSize > int.MaxValue)
                        return 1;
                    step = (int)stepSize;
                    break;
                case "t":
                    if (!CacheMode.TryParse(arg!, out cache))
                    {
                        cli.Error("Invalid cache mode");
                        return 1;
                    }
                    break;
                case "w":
                    write = true;
                    break;
                case "flush-interval":
                    if (!int.TryParse(arg, NumberStyles.None, CultureInfo.InvariantCulture, out flushInterval))
                    {
                        cli.Error("Invalid flush interval specified");
                        return 1;
                    }
                    break;
                case "no-drain":
                    drain = false;
                    break;
                case "pattern-random":
                    random = true;
                    break;
                case "seed":
                    if (!ulong.TryParse(arg, NumberStyles.None, CultureInfo.InvariantCulture, out seed))
                    {
                        cli.Error("Invalid seed specified");
                        return 1;
                    }
                    break;
                case "pattern":
                    if (!TryParseByte(arg!, out pattern))
                    {
                        cli.Error("Invalid pattern byte specified");
                        return 1;
                    }
                    break;
            }
        }
        if (operands.Count != 1)
            return Blk.Usage(cli, "Expecting one image file name");
        if (flushInterval != 0 && !write)
        {
            cli.Error("--flush-interval is only available in write tests");
            return 1;
        }
        if (flushInterval != 0 && flushInterval < depth)
        {
            cli.Error("Flush interval can't be smaller than depth");
            return 1;
        }
        if (aio == BlockdevAioOptions.Native && !cache.Direct)
        {
            cli.Error($"Could not open '{operands[0]}': aio=native was specified, but it requires cache.direct=on, which was not specified.");
            return 1;
        }
        int stepSize2 = step is null or 0 ? bufferSize : step.Value;

        var backend = await ImgCommon.TryOpenAsync(cli, graph, new OpenArgs
        {
            Filename = operands[0], Format = common.Format, ImageOpts = common.ImageOpts, ReadOnly = !write, ForceShare = common.ForceShare, Cache = cache, Aio = aio,
        });
        if (backend is null)
            return 1;

        string where = random
            ? $"random offsets from {offset} aligned to {bufferSize} bytes, seed {seed}"
            : $"starting at offset {offset}, step size {stepSize2}";
        cli.Out.WriteLine($"Sending {count} {(write ? "write" : "read")} requests, {bufferSize} bytes each, {depth} in parallel ({where})");
        if (flushInterval != 0)
            cli.Out.WriteLine($"Sending flush every {flushInterval} requests");
        await cli.Out.FlushAsync();

        var run = new BenchRun(backend, write, count, depth, bufferSize, stepSize2, offset, flushInterval, drain, pattern)
        {
            RandomSeed = random ? seed : null,
        };
        var elapsed = await run.RunAsync();
        if (run.Failure is { } failure)
        {
            cli.Error($"Failed request: {ErrnoText.Describe(failure.Errno)}");
            return 1;
        }
        cli.Out.WriteLine($"Run completed in {CFormat.Fixed(elapsed.TotalSeconds, 3)} seconds.");
        return 0;
    }

    private static bool TryParseByte(string text, out byte value)
    {
        value = 0;
        if (!Block.Options.SizeParser.TryParseInt64(text, out long v) || v < 0 || v > 255)
            return false;
        value = (byte)v;
        return true;
    }
}
