using Block.Cli.Common;
using Block.Graph;
using Block.Jobs;

namespace Block.Cli.Img;

/// <summary>
/// <c>blk commit</c>: qemu-img commit. The top image's data goes into its backing file (or into <c>-b base</c> further
/// down the chain, which implies <c>-d</c>), then the top is emptied unless <c>-d</c>.
/// </summary>
internal static class CommitCommand
{
    public static async Task<int> RunAsync(CliContext cli, string[] args)
    {
        var longOptions = ImgCommon.LongOptions(("format", true, "f"));
        longOptions.Remove("force-share");
        var getopt = new GetOpt("f:ht:b:dpqr:", longOptions);
        if (ImgCommon.Parse(cli, getopt, args) is not var (options, operands))
            return 1;
        await using var graph = cli.CreateGraph();
        var common = new CommonOptions(cli, graph);
        string? cacheText = null, baseName = null;
        bool drop = false, progress = false;
        long rateLimit = 0;
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
                case "t":
                    cacheText = arg;
                    break;
                case "b":
                    baseName = arg;
                    // As qemu-img: the images between the top and a base further down are invalid after the commit,
                    // so the top is kept (it still reads right over them).
                    drop = true;
                    break;
                case "d":
                    drop = true;
                    break;
                case "p":
                    progress = true;
                    break;
                case "r":
                    if (!ImgCommon.TryParseSize(cli, arg!, "rate limit", out rateLimit))
                        return 1;
                    break;
            }
        }
        if (common.Quiet)
            progress = false;
        if (operands.Count != 1)
            return Blk.Usage(cli, "Expecting one image file name");
        var cache = CacheMode.Writeback;
        if (cacheText != null && !ImgCommon.TryParseCache(cli, cacheText, out cache))
            return 1;
        if (common.ImageOpts && common.Format != null)
        {
            cli.Error("--image-opts and --format are mutually exclusive");
            return 1;
        }

        string filename = operands[0];
        var backend = await ImgCommon.TryOpenAsync(cli, graph, new OpenArgs
        {
            Filename = filename,
            Format = common.Format,
            ImageOpts = common.ImageOpts,
            Cache = cache,
            Discard = Qapi.BlockdevDiscardOptions.Unmap,
        });
        if (backend is null)
            return 1;

        var meter = new Progress(progress ? cli.Out : null, 1.0);
        meter.Report(0, force: true);
        string? error = await CommitAsync(backend.Root!, filename, baseName, drop, rateLimit, meter);
        meter.End();
        if (error != null)
        {
            cli.Error(error);
            return 1;
        }
        if (!common.Quiet)
            cli.Out.WriteLine("Image committed.");
        return 0;
    }

    /// <summary>Runs the commit and empties the top; returns the error message, or null.</summary>
    private static async Task<string?> CommitAsync(BlockNode top, string filename, string? baseName, bool drop, long rateLimit, Progress meter)
    {
        BlockNode? @base;
        if (baseName != null)
        {
            @base = top.FindBackingImage(baseName);
            if (@base is null)
                return $"Did not find '{baseName}' in the backing chain of '{filename}'";
        }
        else
        {
            @base = top.Backing?.Node;
            if (@base is null)
                return "Image does not have a backing file";
        }

        try
        {
            var commit = new BlockCommit(top, @base, new BlockCommitOptions
            {
                RateLimit = rateLimit,
                Progress = (done, total) => meter.Report(total == 0 ? 0 : (float)done / total * 100f),
            });
            await commit.RunAsync();
        }
        catch (BlockException e)
        {
            return $"Block job failed: {ErrnoText.Describe(e.Errno)}";
        }
        meter.Report(100);

        if (!drop)
        {
            try
            {
                await top.Impl.MakeEmptyAsync();
                await top.FlushAsync();
            }
            catch (BlockException e) when (e.Errno == Errno.ENOTSUP)
            {
                // As qemu-img: a format that cannot be emptied keeps its data; the commit itself succeeded.
            }
            catch (BlockException e)
            {
                return $"Failed to empty {top.Filename}: {ErrnoText.Describe(e.Errno)}";
            }
        }
        return null;
    }
}
