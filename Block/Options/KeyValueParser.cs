using System.Text;
using System.Text.Json.Nodes;

namespace Block.Options;

/// <summary>
/// Parses QEMU's dotted <c>key=value,key.sub=value</c> syntax (<c>--blockdev</c>, <c>--image-opts</c>,
/// <c>-o</c>) into a tree of objects whose leaves are strings.
/// </summary>
/// <remarks>
/// Commas inside a value are written twice (<c>filename=a,,b</c> means <c>a,b</c>). A dotted key nests
/// (<c>file.driver=file</c> becomes <c>{"file": {"driver": "file"}}</c>), and an object whose keys are exactly
/// <c>0</c>…<c>n-1</c> becomes a list, as QEMU's keyval parser does. Leaves stay strings: the typed reader converts
/// them, because only the schema knows whether <c>on</c> is a boolean.
/// </remarks>
public static class KeyValueParser
{
    /// <summary>Parses <paramref name="text"/>; <paramref name="impliedKey"/> names a leading value without <c>=</c>.</summary>
    /// <exception cref="BlockOptionsException">The text is malformed or repeats a key.</exception>
    public static JsonObject Parse(string text, string? impliedKey = null)
    {
        var root = new JsonObject();
        int pos = 0;
        bool first = true;
        while (pos < text.Length)
        {
            string key = ReadKey(text, ref pos, out bool hasValue);
            string value;
            if (!hasValue)
            {
                if (first && impliedKey != null)
                {
                    value = key;
                    key = impliedKey;
                }
                else if (key == "help" || key == "?")
                {
                    value = "on";
                }
                else
                {
                    throw new BlockOptionsException($"Expected '=' after parameter '{key}'");
                }
            }
            else
            {
                value = ReadValue(text, ref pos);
            }
            first = false;
            Insert(root, key, value);
        }
        if (Listify(root) is not JsonObject result)
            throw new BlockOptionsException("Parameter '0' is unexpected: options must be named, not a list");
        return result;
    }

    private static string ReadKey(string text, ref int pos, out bool hasValue)
    {
        int start = pos;
        while (pos < text.Length && text[pos] != '=' && text[pos] != ',')
            pos++;
        string key = text[start..pos];
        hasValue = pos < text.Length && text[pos] == '=';
        if (hasValue)
            pos++;
        else if (pos < text.Length)
            pos++;
        if (key.Length == 0)
            throw new BlockOptionsException("Invalid parameter ''");
        foreach (var part in key.Split('.'))
        {
            if (part.Length == 0)
                throw new BlockOptionsException($"Invalid parameter '{key}'");
        }
        return key;
    }

    private static string ReadValue(string text, ref int pos)
    {
        var sb = new StringBuilder();
        while (pos < text.Length)
        {
            char c = text[pos];
            if (c == ',')
            {
                if (pos + 1 < text.Length && text[pos + 1] == ',')
                {
                    sb.Append(',');
                    pos += 2;
                    continue;
                }
                pos++;
                break;
            }
            sb.Append(c);
            pos++;
        }
        return sb.ToString();
    }

    private static void Insert(JsonObject root, string key, string value)
    {
        var parts = key.Split('.');
        var obj = root;
        for (int i = 0; i < parts.Length - 1; i++)
        {
            var existing = obj[parts[i]];
            if (existing is null)
            {
                var child = new JsonObject();
                obj[parts[i]] = child;
                obj = child;
            }
            else if (existing is JsonObject o)
            {
                obj = o;
            }
            else
            {
                throw new BlockOptionsException($"Parameter '{string.Join('.', parts[..(i + 1)])}' used inconsistently");
            }
        }
        string leaf = parts[^1];
        if (obj.ContainsKey(leaf))
        {
            if (obj[leaf] is JsonObject)
                throw new BlockOptionsException($"Parameter '{key}' used inconsistently");
            // QEMU's keyval: the last value of a repeated key wins.
            obj.Remove(leaf);
        }
        obj[leaf] = JsonValue.Create(value);
    }

    /// <summary>Turns objects keyed <c>0</c>…<c>n-1</c> into lists, recursively.</summary>
    internal static JsonNode Listify(JsonNode node)
    {
        if (node is not JsonObject obj)
            return node;
        foreach (var key in obj.Select(kv => kv.Key).ToList())
        {
            var child = obj[key]!;
            obj.Remove(key);
            obj[key] = Listify(child);
        }
        if (obj.Count == 0)
            return obj;
        var keys = obj.Select(kv => kv.Key).ToList();
        if (!keys.All(k => k.All(char.IsAsciiDigit)))
            return obj;
        var indices = keys.Select(k => long.TryParse(k, out long v) ? v : -1).OrderBy(v => v).ToList();
        for (int i = 0; i < indices.Count; i++)
        {
            if (indices[i] != i)
                throw new BlockOptionsException($"Parameter '{i}' missing");
        }
        var array = new JsonArray();
        foreach (var index in indices)
        {
            var child = obj[index.ToString(System.Globalization.CultureInfo.InvariantCulture)];
            obj.Remove(index.ToString(System.Globalization.CultureInfo.InvariantCulture));
            array.Add(child);
        }
        return array;
    }

    /// <summary>
    /// Expands dotted member names (<c>{"file.filename": "x"}</c>) into nested objects, as QEMU does for
    /// <c>json:</c> file names, which accept both spellings.
    /// </summary>
    public static JsonObject ExpandDottedKeys(JsonObject source)
    {
        var result = new JsonObject();
        foreach (var (key, value) in source.ToList())
        {
            source.Remove(key);
            var expanded = value is JsonObject o ? ExpandDottedKeys(o) : value;
            var parts = key.Split('.');
            var target = result;
            for (int i = 0; i < parts.Length - 1; i++)
            {
                if (target[parts[i]] is JsonObject existing)
                {
                    target = existing;
                }
                else if (target.ContainsKey(parts[i]))
                {
                    throw new BlockOptionsException($"Parameter '{key}' used inconsistently");
                }
                else
                {
                    var child = new JsonObject();
                    target[parts[i]] = child;
                    target = child;
                }
            }
            string leaf = parts[^1];
            if (target[leaf] is JsonObject existingLeaf && expanded is JsonObject newLeaf)
            {
                foreach (var (k, v) in newLeaf.ToList())
                {
                    newLeaf.Remove(k);
                    existingLeaf[k] = v;
                }
            }
            else if (target.ContainsKey(leaf))
            {
                throw new BlockOptionsException($"Parameter '{key}' used inconsistently");
            }
            else
            {
                target[leaf] = expanded;
            }
        }
        return result;
    }
}
