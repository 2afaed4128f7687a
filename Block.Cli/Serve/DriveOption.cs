using System.Text.Json.Nodes;
using Block.Graph;
using Block.Options;
using Block.Qapi;
using Block.Throttle;

namespace Block.Cli.Serve;

/// <summary>
/// <c>--drive</c> in QEMU's <c>-drive</c> syntax: a named backend (<c>id</c>) over an image (<c>file</c>,
/// <c>format</c>, probed when absent; no <c>file</c> makes an empty drive), with the drive's own options (<c>if=none</c>, <c>read-only</c>, <c>cache.*</c>,
/// <c>aio</c>, <c>discard</c>, <c>detect-zeroes</c>, <c>rerror</c>, <c>werror</c>, <c>throttling.*</c>,
/// <c>stats-intervals.N</c>, <c>stats-account-invalid</c>/<c>-failed</c>); other keys go to the format node.
/// </summary>
internal static class DriveOption
{
    private static readonly (string Key, ThrottleBucketType Type)[] s_buckets =
    [
        ("bps-total", ThrottleBucketType.BpsTotal), ("bps-read", ThrottleBucketType.BpsRead), ("bps-write", ThrottleBucketType.BpsWrite),
        ("iops-total", ThrottleBucketType.IopsTotal), ("iops-read", ThrottleBucketType.IopsRead), ("iops-write", ThrottleBucketType.IopsWrite),
    ];

    /// <summary>Opens the drive described by <paramref name="text"/> as a backend of <paramref name="graph"/>.</summary>
    /// <exception cref="BlockException">A bad option or an image that does not open, with QEMU's text.</exception>
    public static async Task<BlockBackend> AddAsync(BlockGraph graph, string text)
    {
        var tree = KeyValueParser.Parse(text);
        var reader = new OptionsReader(tree, keyval: true);
        string id = reader.String("id") ?? throw new BlockOptionsException("Parameter 'id' is missing");
        string iface = reader.String("if") ?? "none";
        if (iface != "none")
            throw new BlockOptionsException($"blk serve has no machine: drive interface '{iface}' is not supported, use if=none");
        // file=NAME names the image; file.driver=… (an object) describes it, as with -drive's dotted options.
        string? file = tree["file"] is JsonObject ? null : reader.String("file");
        bool described = tree["file"] is JsonObject || tree.ContainsKey("driver");
        var rerror = ErrorAction(reader.String("rerror"), BlockdevOnError.Report, read: true);
        var werror = ErrorAction(reader.String("werror"), BlockdevOnError.Enospc, read: false);
        var cache = reader.Object("cache");
        var intervals = new List<long>();
        // stats-intervals.0=…, stats-intervals.1=…: keyval makes a list of the numbered keys.
        if (reader.StringList("stats-intervals") is { } statsIntervals)
        {
            foreach (string raw in statsIntervals)
            {
                if (!long.TryParse(raw, out long seconds) || seconds < 1 || seconds > uint.MaxValue)
                    throw new BlockOptionsException($"Invalid interval length: {raw}");
                intervals.Add(seconds);
            }
        }
        var (throttle, group) = ReadThrottling(reader.Object("throttling"));
        var options = new ImageOpenOptions
        {
            Format = reader.String("format"),
            AllowProbing = true,
            // As QEMU 2.8's -drive: a legacy AES qcow2 image without its secret opens, waiting for block_passwd.
            KeyLater = true,
            // read-only is -drive's name; 2.8 and 7.2 also take the older readonly.
            ReadOnly = reader.Bool("read-only") ?? reader.Bool("readonly") ?? false,
            CacheDirect = cache?.Bool("direct") ?? false,
            NoFlush = cache?.Bool("no-flush") ?? false,
            Aio = reader.Enum<BlockdevAioOptions>("aio"),
            Discard = reader.Enum<BlockdevDiscardOptions>("discard") ?? BlockdevDiscardOptions.Ignore,
            DetectZeroes = reader.Enum<BlockdevDetectZeroesOptions>("detect-zeroes") ?? BlockdevDetectZeroesOptions.Off,
            Backend = new BlockBackendOptions
            {
                Name = id,
                ReadErrorPolicy = rerror,
                WriteErrorPolicy = werror,
                WriteThrough = cache?.Bool("writeback") == false,
                StatsIntervals = intervals,
                Throttle = throttle,
                ThrottleGroup = group,
            },
        };
        cache?.Skip("writeback");
        cache?.Finish();
        bool? accountInvalid = reader.Bool("stats-account-invalid");
        bool? accountFailed = reader.Bool("stats-account-failed");
        var extra = new JsonObject();
        foreach (var (key, value) in tree)
        {
            if (key == "file" && value is JsonObject)
                extra[key] = value.DeepClone();
            else if (key is not ("id" or "if" or "file" or "rerror" or "werror" or "cache" or "stats-intervals" or "throttling" or "format"
                or "read-only" or "readonly" or "aio" or "discard" or "detect-zeroes" or "stats-account-invalid" or "stats-account-failed"))
                extra[key] = value?.DeepClone();
        }
        if (extra.Count > 0)
            options = options with { ExtraOptions = extra };
        // A drive without a file is an empty drive: a removable device's medium comes later (blockdev-change-medium).
        var backend = file != null ? await graph.OpenImageAsync(file, options).ConfigureAwait(false)
            : described ? await graph.OpenImageAsync(new JsonObject(), options).ConfigureAwait(false)
            : graph.CreateEmptyBackend(options);
        if (accountInvalid is { } invalid)
            backend.Stats.AccountInvalid = invalid;
        if (accountFailed is { } failed)
            backend.Stats.AccountFailed = failed;
        return backend;
    }

    private static BlockdevOnError ErrorAction(string? value, BlockdevOnError fallback, bool read)
    {
        if (value is null)
            return fallback;
        if (!QapiEnum<BlockdevOnError>.TryParse(value, out var action))
            throw new BlockOptionsException($"'{value}' invalid {(read ? "read" : "write")} error action");
        if (read && action == BlockdevOnError.Enospc)
            throw new BlockOptionsException("'enospc' invalid read error action");
        return action;
    }

    /// <summary>The <c>throttling.*</c> options: the limits (validated as QEMU does) and <c>throttling.group</c>.</summary>
    private static (ThrottleConfig? Config, string? Group) ReadThrottling(OptionsReader? throttling)
    {
        if (throttling is null)
            return (null, null);
        var limits = new ThrottleLimit[6];
        foreach (var (key, type) in s_buckets)
        {
            limits[(int)type] = new ThrottleLimit(Number(throttling, key), Number(throttling, key + "-max"),
                throttling.Has(key + "-max-length") ? Number(throttling, key + "-max-length") : 1);
        }
        var config = new ThrottleConfig
        {
            BpsTotal = limits[0],
            BpsRead = limits[1],
            BpsWrite = limits[2],
            IopsTotal = limits[3],
            IopsRead = limits[4],
            IopsWrite = limits[5],
            IopsSize = Number(throttling, "iops-size"),
        };
        string? group = throttling.String("group");
        throttling.Finish();
        config.Validate();
        return (config, group);
    }

    private static long Number(OptionsReader reader, string key) => reader.Int(key) ?? 0;
}
