using Block.Cli.Common;
using Block.Graph;

namespace Block.Cli.Img;

/// <summary>
/// <c>blk bitmap</c>: qemu-img bitmap. Opens the image read-write and runs the actions in the order given on the
/// persistent bitmap named by the last operand (<c>--add</c> creates it persistent and recording, <c>--merge SOURCE</c>
/// ORs SOURCE, of this image or of the <c>-b</c> image, into it); the first failure ends the run with exit 1. The
/// bitmaps are stored when the image closes, whatever happened.
/// </summary>
internal static class BitmapCommand
{
    public static async Task<int> RunAsync(CliContext cli, string[] args)
    {
        var longOptions = new Dictionary<string, (bool, string)>(StringComparer.Ordinal)
        {
            ["help"] = (false, "h"),
            ["object"] = (true, "object"),
            ["image-opts"] = (false, "image-opts"),
            ["add"] = (false, "add"),
            ["remove"] = (false, "remove"),
            ["clear"] = (false, "clear"),
            ["enable"] = (false, "enable"),
            ["disable"] = (false, "disable"),
            ["merge"] = (true, "merge"),
            ["granularity"] = (true, "g"),
            ["source-file"] = (true, "b"),
            ["source-format"] = (true, "F"),
        };
        if (ImgCommon.Parse(cli, new GetOpt(":b:f:F:g:h", longOptions), args) is not var (options, operands))
            return 1;
        await using var graph = cli.CreateGraph();
        var common = new CommonOptions(cli, graph);
        var actions = new List<(string Operation, string? Source)>();
        long granularity = 0;
        string? sourceFile = null, sourceFormat = null;
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
                case "b":
                    sourceFile = arg;
                    break;
                case "F":
                    sourceFormat = arg;
                    break;
                case "g":
                    if (!ImgCommon.TryParseSize(cli, arg!, "granularity", out granularity))
                        return 1;
                    break;
                default:
                    actions.Add((code, arg));
                    break;
            }
        }

        if (actions.Count == 0)
            return Fail(cli, "Need at least one of --add, --remove, --clear, --enable, --disable, or --merge");
        bool merges = actions.Exists(a => a.Operation == "merge");
        if (granularity != 0 && !actions.Exists(a => a.Operation == "add"))
            return Fail(cli, "granularity only supported with --add");
        if (sourceFormat != null && sourceFile is null)
            return Fail(cli, "-F only supported with -b");
        if (sourceFile != null && !merges)
            return Fail(cli, "Merge bitmap source file only supported with --merge");
        if (operands.Count != 2)
            return Fail(cli, "Expecting filename and bitmap name");
        if (common.ImageOpts && common.Format != null)
            return Fail(cli, "--image-opts and --format are mutually exclusive");
        string bitmap = operands[1];

        var image = await ImgCommon.TryOpenAsync(cli, graph, new OpenArgs
        {
            Filename = operands[0],
            Format = common.Format,
            ImageOpts = common.ImageOpts,
        });
        if (image is null)
            return 1;
        var node = image.Root!;
        var sourceNode = node;
        if (sourceFile != null)
        {
            var source = await ImgCommon.TryOpenAsync(cli, graph, new OpenArgs
            {
                Filename = sourceFile,
                Format = sourceFormat,
                ImageOpts = common.ImageOpts,
                ReadOnly = true,
            });
            if (source is null)
                return 1;
            sourceNode = source.Root!;
        }

        foreach (var (operation, sourceBitmap) in actions)
        {
            try
            {
                await RunActionAsync(node, bitmap, operation, granularity, sourceNode, sourceBitmap);
            }
            catch (BlockException e)
            {
                cli.Error($"Operation {operation} on bitmap {bitmap} failed: {e.Message}");
                return 1;
            }
        }
        return 0;
    }

    private static async ValueTask RunActionAsync(BlockNode node, string bitmap, string operation, long granularity, BlockNode sourceNode, string? sourceBitmap)
    {
        switch (operation)
        {
            case "add":
                // qemu-img passes the granularity through QMP's 32-bit member: 0 means the default, 4G wraps to 0.
                await node.AddDirtyBitmapAsync(bitmap, granularity != 0 ? (long)(uint)granularity : null, persistent: true);
                break;
            case "remove":
                await node.RemoveDirtyBitmapAsync(bitmap);
                break;
            case "clear":
                node.ClearDirtyBitmap(bitmap);
                break;
            case "enable":
                node.EnableDirtyBitmap(bitmap);
                break;
            case "disable":
                node.DisableDirtyBitmap(bitmap);
                break;
            default:
                node.MergeDirtyBitmaps(bitmap, [(sourceNode, sourceBitmap!)]);
                break;
        }
    }

    private static int Fail(CliContext cli, string message)
    {
        cli.Error(message);
        return 1;
    }
}
