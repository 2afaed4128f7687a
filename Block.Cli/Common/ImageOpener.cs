using System.Text.Json.Nodes;
using Block.Graph;
using Block.Options;
using Block.Qapi;

namespace Block.Cli.Common;

/// <summary>How a command opens its image: the union of qemu-img's and qemu-io's open flags.</summary>
internal sealed record OpenArgs
{
    public required string Filename { get; init; }

    public string? Format { get; init; }

    /// <summary>The filename is a dotted option string (<c>--image-opts</c>).</summary>
    public bool ImageOpts { get; init; }

    public bool ReadOnly { get; init; }

    public bool ForceShare { get; init; }

    public CacheMode Cache { get; init; } = CacheMode.Writeback;

    public BlockdevAioOptions? Aio { get; init; }

    public BlockdevDiscardOptions Discard { get; init; } = BlockdevDiscardOptions.Ignore;

    public BlockdevDetectZeroesOptions DetectZeroes { get; init; } = BlockdevDetectZeroesOptions.Off;

    /// <summary>
    /// Writes go to a temporary qcow2 overlay and the image is opened read-only (QEMU's <c>-s</c>/<c>snapshot=on</c>).
    /// </summary>
    public bool Snapshot { get; init; }

    /// <summary>Share only read with other users (qemu-img convert's sources and compare).</summary>
    public bool Exclusive { get; init; }

    /// <summary>Metadata only (qemu-img info's <c>BDRV_O_NO_IO</c>): encrypted images open without their key.</summary>
    public bool NoIo { get; init; }

    /// <summary>Opened to be checked and repaired (qemu-img check's <c>BDRV_O_CHECK</c>).</summary>
    public bool ForCheck { get; init; }

    /// <summary>Do not open the backing file (qemu-img info reads each image of a chain on its own).</summary>
    public bool NoBacking { get; init; }

    /// <summary>Extra options for the format node, as <c>key=value</c> text (qemu-io's <c>open -o</c>).</summary>
    public string? ExtraOptions { get; init; }
}

/// <summary>Opens images for the commands, with qemu-img's probing warning and error wording.</summary>
internal static class ImageOpener
{
    /// <summary>Opens the image and attaches a backend.</summary>
    /// <exception cref="BlockException">The open failed; the message is the driver's, without "Could not open".</exception>
    public static async Task<BlockBackend> OpenAsync(CliContext cli, BlockGraph graph, OpenArgs args)
    {
        var options = new ImageOpenOptions
        {
            Format = args.Format,
            AllowProbing = true,
            ReadOnly = args.ReadOnly,
            ForceShare = args.ForceShare,
            NoIo = args.NoIo,
            ForCheck = args.ForCheck,
            CacheDirect = args.Cache.Direct,
            NoFlush = args.Cache.NoFlush,
            Discard = args.Discard,
            DetectZeroes = args.DetectZeroes,
            Aio = args.Aio,
            NoBacking = args.NoBacking,
            ExtraOptions = args.ExtraOptions is null ? null : KeyValueParser.Parse(args.ExtraOptions),
            Backend = new BlockBackendOptions
            {
                // qemu-img and qemu-io have no device model, so QEMU accounts nothing for them; neither does blk.
                Accounting = false,
                // QEMU's backends default to werror=enospc, but only a device model retries a stopped request: qemu-img
                // and qemu-io report ENOSPC like any error. Held here, the request would wait for a resume that never comes.
                WriteErrorPolicy = BlockdevOnError.Report,
                WriteThrough = args.Cache.WriteThrough,
                SharedPermissions = args.Exclusive ? BlockPermissions.ConsistentRead | BlockPermissions.WriteUnchanged : BlockPermissions.All,
            },
        };
        if (options.ForceShare && !options.ReadOnly)
            throw new BlockOptionsException("force-share=on can only be used with read-only images");

        if (args.Snapshot)
            options = options with { ReadOnly = true };
        BlockNode node;
        if (args.ImageOpts)
        {
            var tree = KeyValueParser.Parse(args.Filename);
            if (!tree.ContainsKey("driver") && !tree.ContainsKey("file") && !tree.ContainsKey("filename"))
                throw new BlockOptionsException("Must specify either driver or file");
            node = await graph.OpenImageNodeAsync(tree, options);
        }
        else
        {
            node = await graph.OpenImageNodeAsync(args.Filename, options);
        }

        if (args.Format is null && !args.ImageOpts && !args.ReadOnly && IsProbedRaw(node))
            WarnProbedRaw(cli, args.Filename);

        try
        {
            if (args.Snapshot)
                node = await AddTemporaryOverlayAsync(graph, node, args.ReadOnly);
            var perm = args.ReadOnly ? BlockPermissions.ConsistentRead : BlockPermissions.ConsistentRead | BlockPermissions.Write;
            return graph.CreateBackend(node, options.Backend with { Permissions = perm });
        }
        catch
        {
            await graph.ReleaseNodeAsync(node);
            throw;
        }
    }

    /// <summary>
    /// Puts a qcow2 overlay in a new temporary file above <paramref name="image"/> and returns it; the file is
    /// unlinked as soon as it is open, so it goes away with the process however that ends.
    /// </summary>
    /// <remarks>Like QEMU's, the file lives in <c>$TMPDIR</c>, else <c>/var/tmp</c> (images can be larger than a
    /// tmpfs /tmp).</remarks>
    private static async Task<BlockNode> AddTemporaryOverlayAsync(BlockGraph graph, BlockNode image, bool readOnly)
    {
        string directory = Environment.GetEnvironmentVariable("TMPDIR") is { Length: > 0 } tmp ? tmp : "/var/tmp";
        string path = Path.Combine(directory, $"vl.{Guid.NewGuid():N}");
        var create = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["size"] = image.Length.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["backing_file"] = image.Filename,
            ["backing_fmt"] = image.DriverName,
        };
        BlockNode overlay;
        try
        {
            await graph.CreateImageAsync("qcow2", path, create);
            overlay = await graph.OpenImageNodeAsync(path, new ImageOpenOptions { Format = "qcow2", NoBacking = true, ReadOnly = readOnly });
        }
        finally
        {
            File.Delete(path);
        }
        try
        {
            await graph.SnapshotAsync(image.NodeName, overlay.NodeName);
        }
        catch
        {
            await graph.ReleaseNodeAsync(overlay);
            throw;
        }
        return overlay;
    }

    /// <summary>The file name a message shows for the image (the option string with <c>--image-opts</c>).</summary>
    public static JsonObject? Tree(OpenArgs args) => args.ImageOpts ? KeyValueParser.Parse(args.Filename) : null;

    /// <summary>Whether <paramref name="node"/> is a raw node whose format was guessed by probing.</summary>
    internal static bool IsProbedRaw(BlockNode node) => node.Options is Block.Drivers.Raw.BlockdevOptionsRaw { Probed: true };

    /// <summary>QEMU's warning for a writable image whose format was guessed as raw (its raw driver prints it on open).</summary>
    internal static void WarnProbedRaw(CliContext cli, string filename)
    {
        cli.Err.WriteLine($"WARNING: Image format was not specified for '{filename}' and probing guessed raw.");
        cli.Err.WriteLine("         Automatically detecting the format is dangerous for raw images, write operations on block 0 will be restricted.");
        cli.Err.WriteLine("         Specify the 'raw' format explicitly to remove the restrictions.");
    }
}
