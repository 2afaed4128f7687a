using System.Text.Json;
using System.Text.Json.Nodes;
using Block.Drivers;
using Block.Qapi;

namespace Block.Options;

/// <summary>
/// Turns options in any of QEMU's spellings into typed <see cref="BlockdevOptions"/>: QMP JSON objects, dotted
/// <c>key=value</c> strings, and <c>json:{…}</c> file names. Unknown and ill-typed members are errors that name
/// them.
/// </summary>
public sealed class BlockdevOptionsParser
{
    private readonly DriverRegistry _registry;

    /// <summary>JSON as QEMU's parser takes it, except that a member given twice is an error rather than a silent override.</summary>
    internal static JsonDocumentOptions StrictJson { get; } = new() { AllowDuplicateProperties = false, MaxDepth = 64 };

    /// <summary>Creates a parser for the drivers of <paramref name="registry"/>.</summary>
    public BlockdevOptionsParser(DriverRegistry registry)
    {
        _registry = registry;
    }

    /// <summary>Parses QMP <c>blockdev-add</c> arguments.</summary>
    public BlockdevOptions ParseJson(JsonObject arguments) => Parse(new OptionsReader(arguments, keyval: false));

    /// <summary>Parses a JSON text (as <c>--blockdev '{…}'</c> takes).</summary>
    public BlockdevOptions ParseJson(string json)
    {
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(json, documentOptions: StrictJson);
        }
        catch (JsonException e)
        {
            throw new BlockOptionsException($"Invalid JSON: {e.Message}");
        }
        if (node is not JsonObject obj)
            throw new BlockOptionsException("Options must be a JSON object");
        return ParseJson(obj);
    }

    /// <summary>Parses <c>driver=raw,file.driver=file,file.filename=x.img</c>.</summary>
    public BlockdevOptions ParseKeyValue(string text) =>
        Parse(new OptionsReader(KeyValueParser.Parse(text), keyval: true));

    /// <summary>Parses a <c>json:{…}</c> file name (dotted member names are accepted, as QEMU does).</summary>
    public BlockdevOptions ParseJsonFilename(string filename) =>
        Parse(new OptionsReader(JsonFilenameObject(filename), keyval: false));

    /// <summary>The object inside a <c>json:{…}</c> file name, with dotted members expanded.</summary>
    public static JsonObject JsonFilenameObject(string filename)
    {
        if (!filename.StartsWith("json:", StringComparison.Ordinal))
            throw new BlockOptionsException("Not a json: file name");
        JsonNode? node;
        try
        {
            node = JsonNode.Parse(filename[5..], documentOptions: StrictJson);
        }
        catch (JsonException e)
        {
            throw new BlockOptionsException($"Could not parse the JSON options: {e.Message}");
        }
        if (node is not JsonObject obj)
            throw new BlockOptionsException("Invalid JSON object given");
        return KeyValueParser.ExpandDottedKeys(obj);
    }

    /// <summary>
    /// Parses one options object: the <c>driver</c> member selects the driver, which reads its own members; the
    /// common members are read here; anything left is an error.
    /// </summary>
    public BlockdevOptions Parse(OptionsReader reader)
    {
        // In an image's options (--image-opts, json:), a child with a file name and no driver gets the protocol its
        // name implies, as QEMU fills it in for every child it opens (blockdev-add's schema requires the driver).
        string driverName = reader.String("driver")
            ?? (reader.Keyval && reader.Prefix.Length > 0 && reader.PeekString("filename") is { } filename ? _registry.ProtocolFor(filename).Name : null)
            ?? throw reader.Missing("driver");
        var driver = _registry.Find(driverName)
            ?? throw new BlockOptionsException($"Parameter '{reader.FullName("driver")}' does not accept value '{driverName}'");

        string? nodeName = reader.String("node-name");
        var discard = reader.Enum<BlockdevDiscardOptions>("discard");
        var cacheReader = reader.Object("cache");
        BlockdevCacheOptions? cache = null;
        if (cacheReader != null)
        {
            cache = new BlockdevCacheOptions { Direct = cacheReader.Bool("direct"), NoFlush = cacheReader.Bool("no-flush") };
            cacheReader.Finish();
        }
        bool? readOnly = reader.Bool("read-only");
        var detectZeroes = reader.Enum<BlockdevDetectZeroesOptions>("detect-zeroes");
        bool? forceShare = reader.Bool("force-share");

        var options = driver.ParseOptions(reader, this);
        reader.Finish();
        if (nodeName != null)
            NodeNames.Validate(nodeName);
        return options with
        {
            Driver = driverName,
            NodeName = nodeName,
            Discard = discard,
            Cache = cache,
            ReadOnly = readOnly,
            DetectZeroes = detectZeroes,
            ForceShare = forceShare,
        };
    }
}
