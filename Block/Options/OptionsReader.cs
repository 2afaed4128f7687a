using System.Diagnostics.CodeAnalysis;
using System.Text.Json;
using System.Text.Json.Nodes;
using Block.Qapi;

namespace Block.Options;

/// <summary>
/// Reads typed members out of one options object, remembering which were read, so that anything left over is
/// reported by name (<see cref="Finish"/>).
/// </summary>
/// <remarks>
/// In <em>keyval</em> mode (options that came from a <c>key=value</c> string) every leaf is a string and is
/// converted by the type the schema gives it: <c>on</c>/<c>off</c> for booleans, integers in any base, sizes with
/// suffixes. JSON input must carry the right JSON type, as QMP requires. Error texts are QEMU's.
/// </remarks>
public sealed class OptionsReader
{
    private readonly JsonObject _object;
    private readonly HashSet<string> _consumed = new(StringComparer.Ordinal);

    /// <summary>Creates a reader over <paramref name="obj"/>.</summary>
    /// <param name="obj">The options object.</param>
    /// <param name="keyval">True if the leaves are strings from a <c>key=value</c> text.</param>
    /// <param name="prefix">The dotted path of <paramref name="obj"/> inside the whole options, for messages.</param>
    public OptionsReader(JsonObject obj, bool keyval, string prefix = "")
    {
        _object = obj;
        Keyval = keyval;
        Prefix = prefix;
    }

    /// <summary>True if leaves are strings to convert.</summary>
    public bool Keyval { get; }

    /// <summary>The dotted path of this object.</summary>
    public string Prefix { get; }

    /// <summary>The object being read.</summary>
    public JsonObject Source => _object;

    /// <summary>The full dotted name of member <paramref name="name"/>.</summary>
    public string FullName(string name) => Prefix.Length == 0 ? name : Prefix + "." + name;

    /// <summary>True if the member is present (and not null).</summary>
    public bool Has(string name) => _object[name] is not null;

    /// <summary>Marks a member as read without reading it.</summary>
    public void Skip(string name) => _consumed.Add(name);

    /// <summary>Reads a required string.</summary>
    public string RequiredString(string name) => String(name) ?? throw Missing(name);

    /// <summary>Reads an optional string.</summary>
    public string? String(string name)
    {
        var node = Take(name);
        if (node is null)
            return null;
        if (node is JsonValue v && v.GetValueKind() == JsonValueKind.String)
            return v.GetValue<string>();
        throw TypeError(name, "string");
    }

    /// <summary>The string member <paramref name="name"/>, without reading it (it stays for its owner), or null.</summary>
    public string? PeekString(string name) =>
        _object[name] is JsonValue v && v.GetValueKind() == JsonValueKind.String ? v.GetValue<string>() : null;

    /// <summary>Reads an optional boolean (<c>on</c>/<c>off</c>, <c>yes</c>/<c>no</c>, <c>true</c>/<c>false</c> in keyval mode).</summary>
    public bool? Bool(string name)
    {
        var node = Take(name);
        if (node is null)
            return null;
        if (node is JsonValue v)
        {
            var kind = v.GetValueKind();
            if (kind == JsonValueKind.True)
                return true;
            if (kind == JsonValueKind.False)
                return false;
            if (kind == JsonValueKind.String && Keyval)
            {
                return v.GetValue<string>() switch
                {
                    "on" or "yes" or "true" or "y" => true,
                    "off" or "no" or "false" or "n" => false,
                    _ => throw new BlockOptionsException($"Parameter '{FullName(name)}' expects 'on' or 'off'"),
                };
            }
        }
        throw TypeError(name, "boolean");
    }

    /// <summary>Reads an optional signed 64-bit integer.</summary>
    public long? Int(string name)
    {
        var node = Take(name);
        if (node is null)
            return null;
        if (node is JsonValue v)
        {
            var kind = v.GetValueKind();
            if (JsonNumbers.TryGetInt64(v, out long l))
                return l;
            if (kind == JsonValueKind.Number && v.TryGetValue<double>(out double d) && d == Math.Floor(d) && d >= long.MinValue && d <= long.MaxValue)
                return (long)d;
            if (kind == JsonValueKind.String && Keyval)
            {
                if (SizeParser.TryParseInt64(v.GetValue<string>(), out long parsed))
                    return parsed;
                throw new BlockOptionsException($"Parameter '{FullName(name)}' expects integer");
            }
        }
        throw TypeError(name, "integer");
    }

    /// <summary>Reads an optional integer that must lie in <c>[min, max]</c>.</summary>
    public long? Int(string name, long min, long max)
    {
        long? value = Int(name);
        if (value is { } v && (v < min || v > max))
            throw new BlockOptionsException($"Parameter '{FullName(name)}' expects a value between {min} and {max}");
        return value;
    }

    /// <summary>Reads an optional unsigned 64-bit integer.</summary>
    public ulong? UInt64(string name)
    {
        var node = Take(name);
        if (node is null)
            return null;
        if (node is JsonValue v)
        {
            var kind = v.GetValueKind();
            if (JsonNumbers.TryGetUInt64(v, out ulong u))
                return u;
            if (kind == JsonValueKind.String && Keyval)
            {
                if (SizeParser.TryParseInt64(v.GetValue<string>(), out long parsed) && parsed >= 0)
                    return (ulong)parsed;
                throw new BlockOptionsException($"Parameter '{FullName(name)}' expects uint64");
            }
        }
        throw TypeError(name, "integer");
    }

    /// <summary>Reads an optional size: an integer, or in keyval mode a number with a suffix (<c>64k</c>).</summary>
    public ulong? Size(string name)
    {
        var node = Take(name);
        if (node is null)
            return null;
        if (node is JsonValue v)
        {
            var kind = v.GetValueKind();
            if (JsonNumbers.TryGetUInt64(v, out ulong u))
                return u;
            if (kind == JsonValueKind.String && Keyval)
            {
                if (SizeParser.TryParse(v.GetValue<string>(), out ulong parsed))
                    return parsed;
                throw new BlockOptionsException($"Parameter '{FullName(name)}' expects a non-negative number below 2^64\n" +
                    "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively.");
            }
        }
        throw TypeError(name, "integer");
    }

    /// <summary>Reads an optional QAPI enum by wire name.</summary>
    public T? Enum<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicFields)] T>(string name)
        where T : struct, Enum
    {
        var node = Take(name);
        if (node is null)
            return null;
        if (node is JsonValue v && v.GetValueKind() == JsonValueKind.String)
        {
            string s = v.GetValue<string>();
            if (QapiEnum<T>.TryParse(s, out T value))
                return value;
            throw new BlockOptionsException($"Parameter '{FullName(name)}' does not accept value '{s}'");
        }
        throw TypeError(name, "string");
    }

    /// <summary>Reads an optional nested object.</summary>
    public OptionsReader? Object(string name)
    {
        var node = Take(name);
        if (node is null)
            return null;
        if (node is JsonObject o)
            return new OptionsReader(o, Keyval, FullName(name));
        throw TypeError(name, "object");
    }

    /// <summary>Reads an optional list of strings (<c>bitmaps.0=a,bitmaps.1=b</c> in keyval mode).</summary>
    public IReadOnlyList<string>? StringList(string name)
    {
        var node = Take(name);
        if (node is null)
            return null;
        if (node is not JsonArray array)
            throw TypeError(name, "array");
        var result = new List<string>(array.Count);
        for (int i = 0; i < array.Count; i++)
        {
            if (array[i] is not JsonValue v || v.GetValueKind() != JsonValueKind.String)
                throw new BlockOptionsException($"Invalid parameter type for '{FullName(name)}[{i}]', expected: string");
            result.Add(v.GetValue<string>());
        }
        return result;
    }

    /// <summary>Reads an optional list of objects.</summary>
    public IReadOnlyList<OptionsReader>? ObjectList(string name)
    {
        var node = Take(name);
        if (node is null)
            return null;
        if (node is not JsonArray array)
            throw TypeError(name, "array");
        var result = new List<OptionsReader>(array.Count);
        for (int i = 0; i < array.Count; i++)
        {
            if (array[i] is not JsonObject o)
                throw new BlockOptionsException($"Invalid parameter type for '{FullName(name)}[{i}]', expected: object");
            result.Add(new OptionsReader(o, Keyval, $"{FullName(name)}.{i}"));
        }
        return result;
    }

    /// <summary>Reads an optional <c>BlockdevRef</c>: a node name string, or nested options parsed by <paramref name="parser"/>.</summary>
    public BlockdevRef? Ref(string name, BlockdevOptionsParser parser)
    {
        var node = Take(name);
        if (node is null)
            return null;
        if (node is JsonValue v && v.GetValueKind() == JsonValueKind.String)
            return BlockdevRef.ToNode(v.GetValue<string>());
        if (node is JsonObject o)
            return parser.Parse(new OptionsReader(o, Keyval, FullName(name)));
        throw TypeError(name, "object");
    }

    /// <summary>
    /// Reads an optional list of <c>BlockdevRef</c>s (<c>children.0.driver=raw,children.1=node</c> in keyval mode):
    /// each a node name string, or nested options parsed by <paramref name="parser"/>.
    /// </summary>
    public IReadOnlyList<BlockdevRef>? RefList(string name, BlockdevOptionsParser parser)
    {
        ArgumentNullException.ThrowIfNull(parser);
        var node = Take(name);
        if (node is null)
            return null;
        if (node is not JsonArray array)
            throw TypeError(name, "array");
        var result = new List<BlockdevRef>(array.Count);
        for (int i = 0; i < array.Count; i++)
        {
            if (array[i] is JsonValue v && v.GetValueKind() == JsonValueKind.String)
                result.Add(BlockdevRef.ToNode(v.GetValue<string>()));
            else if (array[i] is JsonObject o)
                result.Add(parser.Parse(new OptionsReader(o, Keyval, $"{FullName(name)}.{i}")));
            else
                throw new BlockOptionsException($"Invalid parameter type for '{FullName(name)}[{i}]', expected: object");
        }
        return result;
    }

    /// <summary>Reads a required <c>BlockdevRef</c>.</summary>
    public BlockdevRef RequiredRef(string name, BlockdevOptionsParser parser) => Ref(name, parser) ?? throw Missing(name);

    /// <summary>Fails with "Parameter 'x' is unexpected" for the first member nobody read.</summary>
    public void Finish()
    {
        foreach (var (key, _) in _object)
        {
            if (!_consumed.Contains(key))
                throw new BlockOptionsException($"Parameter '{FullName(key)}' is unexpected");
        }
    }

    /// <summary>An error for a required member that is absent.</summary>
    public BlockOptionsException Missing(string name) => new($"Parameter '{FullName(name)}' is missing");

    private JsonNode? Take(string name)
    {
        _consumed.Add(name);
        return _object[name];
    }

    private BlockOptionsException TypeError(string name, string expected) =>
        new($"Invalid parameter type for '{FullName(name)}', expected: {expected}");
}
