using Block.Cli.Common;
using Block.Graph;
using Block.Jobs;

namespace Block.Cli.Img;

/// <summary>
/// <c>blk rebase</c>: qemu-img rebase. Safe mode copies into the image what differs between its old backing chain and
/// the new backing file, then records the new one; <c>-u</c> only records the new name and format; <c>-b ""</c> makes the
/// image stand alone.
/// </summary>
internal static class RebaseCommand
{
    public static async Task<int> RunAsync(CliContext cli, string[] args)
    {
        var getopt = new GetOpt("hf:F:b:upt:T:qU", ImgCommon.LongOptions(("format", true, "f")));
        if (ImgCommon.Parse(cli, getopt, args) is not var (options, operands))
            return 1;
        await using var graph = cli.CreateGraph();
        var common = new CommonOptions(cli, graph);
        string? cacheText = null, sourceCacheText = null, backingName = null, backingFormat = null;
        bool unsafeMode = false, progress = false;
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
                    backingName = arg;
                    break;
                case "u":
                    unsafeMode = true;
                    break;
                case "p":
                    progress = true;
                    break;
                case "t":
                    cacheText = arg;
                    break;
                case "T":
                    sourceCacheText = arg;
                    break;
            }
        }
        if (common.Quiet)
            progress = false;
        if (operands.Count != 1)
            return Blk.Usage(cli, "Expecting one image file name");
        if (!unsafeMode && backingName is null)
            return Blk.Usage(cli, "Must specify backing file (-b) or use unsafe mode (-u)");

        // As qemu-img, the meter starts before the cache modes are looked at, and every exit ends its line.
        var meter = new Progress(progress ? cli.Out : null, 2.0);
        meter.Report(0, force: true);
        int result = await RebaseAsync(cli, graph, common, operands[0], backingName, backingFormat, unsafeMode, cacheText, sourceCacheText, meter);
        meter.End();
        return result;
    }

    private static async Task<int> RebaseAsync(CliContext cli, BlockGraph graph, CommonOptions common, string filename, string? backingName,
        string? backingFormat, bool unsafeMode, string? cacheText, string? sourceCacheText, Progress meter)
    {
        var cache = CacheMode.Writeback;
        if (cacheText != null && !ImgCommon.TryParseCache(cli, cacheText, out cache))
            return 1;
        var sourceCache = CacheMode.Writeback;
        if (sourceCacheText != null && !CacheMode.TryParse(sourceCacheText, out sourceCache))
        {
            cli.Error($"Invalid source cache option: {sourceCacheText}");
            return 1;
        }
        if (common.ImageOpts && common.Format != null)
        {
            cli.Error("--image-opts and --format are mutually exclusive");
            return 1;
        }
        var backend = await ImgCommon.TryOpenAsync(cli, graph, new OpenArgs
        {
            Filename = filename,
            Format = common.Format,
            ImageOpts = common.ImageOpts,
            Cache = cache,
            NoBacking = unsafeMode,
        });
        if (backend is null)
            return 1;
        var image = backend.Root!;
        if (backingFormat != null && graph.Drivers.Find(backingFormat) is null)
        {
            cli.Error($"Invalid format name: '{backingFormat}'");
            return 1;
        }

        if (!unsafeMode)
        {
            BlockNode? newBacking = null;
            if (!string.IsNullOrEmpty(backingName))
            {
                // A relative name is relative to the image's directory; an image of the old chain is used as it is open.
                string path = image.ResolveReference(backingName);
                newBacking = image.FindBackingImage(path);
                if (newBacking is null)
                {
                    try
                    {
                        var opened = await ImageOpener.OpenAsync(cli, graph, new OpenArgs
                        {
                            Filename = path,
                            Format = backingFormat,
                            ReadOnly = true,
                            ForceShare = common.ForceShare,
                            Cache = sourceCache,
                        });
                        newBacking = opened.Root!;
                    }
                    catch (BlockException e)
                    {
                        cli.Error($"Could not open new backing file '{backingName}': {e.Message}");
                        return 1;
                    }
                }
            }

            // Each chunk compared moves the meter by its share of the image, as qemu-img counts (a chunk cut short by the
            // image's own allocation counts whole).
            long size = image.Length;
            float step = size == 0 ? 0 : 100f / (size / Math.Min(size, BlockRebase.ChunkBytes));
            try
            {
                await new BlockRebase(image, newBacking, new BlockRebaseOptions { ChunkDone = (_, _) => meter.Advance(step) }).RunAsync();
            }
            catch (BlockException e)
            {
                cli.Error(e.Message);
                return 1;
            }
        }

        // qemu-img completes the meter once the data is in place, whether or not the new name can be recorded.
        meter.Report(100);
        string? name = string.IsNullOrEmpty(backingName) ? null : backingName;
        try
        {
            if (name != null && backingFormat is null)
                throw new BlockException(Errno.EINVAL, "backing format must be specified");
            await image.Impl.ChangeBackingFileAsync(name, name is null ? null : backingFormat);
            await image.FlushAsync();
        }
        catch (BlockException e)
        {
            string reason = e.Errno == Errno.EINVAL && name != null && backingFormat is null ? e.Message
                : e.Errno == Errno.ENOSPC ? "No space left in the file header"
                : ErrnoText.Describe(e.Errno);
            cli.Error($"Could not change the backing file to '{backingName}': {reason}");
            return 1;
        }
        return 0;
    }
}
