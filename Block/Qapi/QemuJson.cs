using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Block.Qapi;

/// <summary>
/// Writes JSON the way QEMU's tools print it, so that <c>blk … --output=json</c> is byte-identical to qemu-img's.
/// </summary>
/// <remarks>
/// QEMU keeps object members in a 512-bucket hash table and prints them bucket by bucket, newest first within a
/// bucket; the order a reader sees is therefore the hash order of the member names, not the schema's. Reproducing
/// it (the bucket of a name is a fixed function of its bytes) makes our output diffable against qemu-img's as text.
/// Members are expected in schema order, as the QAPI records declare them.
/// </remarks>
public static class QemuJson
{
    private const int Buckets = 512;

    /// <summary>Pretty-prints <paramref name="node"/> with 4-space indentation, as <c>qemu-img info --output=json</c>.</summary>
    public static string Pretty(JsonNode? node)
    {
        var sb = new StringBuilder();
        Write(sb, node, pretty: true, indent: 0);
        return sb.ToString();
    }

    /// <summary>Writes <paramref name="node"/> on one line, as QMP messages are.</summary>
    public static string Compact(JsonNode? node)
    {
        var sb = new StringBuilder();
        Write(sb, node, pretty: false, indent: 0);
        return sb.ToString();
    }

    /// <summary>Serializes a QAPI record to a node with its wire names.</summary>
    public static JsonNode? ToNode<T>(T value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> typeInfo) =>
        JsonSerializer.SerializeToNode(value, typeInfo);

    /// <summary>The order QEMU prints an object's members in.</summary>
    public static IEnumerable<KeyValuePair<string, JsonNode?>> MemberOrder(JsonObject obj)
    {
        // Stable sort by bucket; within a bucket the member inserted last comes first.
        var members = obj.ToList();
        return members
            .Select((m, i) => (m, i))
            .OrderBy(x => Bucket(x.m.Key))
            .ThenByDescending(x => x.i)
            .Select(x => x.m);
    }

    private static int Bucket(string name)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(name);
        uint value = unchecked(0x238F13AFu * (uint)bytes.Length);
        for (int i = 0; i < bytes.Length; i++)
            value = unchecked(value + ((uint)bytes[i] << (i * 5 % 24)));
        return (int)(unchecked(1103515243u * value + 12345u) % Buckets);
    }

    private static void Write(StringBuilder sb, JsonNode? node, bool pretty, int indent)
    {
        switch (node)
        {
            case null:
                sb.Append("null");
                break;
            case JsonObject obj:
                WriteObject(sb, obj, pretty, indent);
                break;
            case JsonArray array:
                WriteArray(sb, array, pretty, indent);
                break;
            case JsonValue value:
                WriteValue(sb, value);
                break;
        }
    }

    private static void WriteObject(StringBuilder sb, JsonObject obj, bool pretty, int indent)
    {
        sb.Append('{');
        bool first = true;
        foreach (var (key, value) in MemberOrder(obj))
        {
            if (!first)
                sb.Append(',');
            if (pretty)
                NewLine(sb, indent + 1);
            else if (!first)
                sb.Append(' ');
            first = false;
            WriteString(sb, key);
            sb.Append(": ");
            Write(sb, value, pretty, indent + 1);
        }
        if (pretty && !first)
            NewLine(sb, indent);
        sb.Append('}');
    }

    private static void WriteArray(StringBuilder sb, JsonArray array, bool pretty, int indent)
    {
        sb.Append('[');
        bool first = true;
        foreach (var item in array)
        {
            if (!first)
                sb.Append(',');
            if (pretty)
                NewLine(sb, indent + 1);
            else if (!first)
                sb.Append(' ');
            first = false;
            Write(sb, item, pretty, indent + 1);
        }
        // QEMU breaks the line before the closing bracket even of an empty array ("flags": [\n    ]).
        if (pretty)
            NewLine(sb, indent);
        sb.Append(']');
    }

    private static void NewLine(StringBuilder sb, int indent)
    {
        sb.Append('\n');
        sb.Append(' ', indent * 4);
    }

    private static void WriteValue(StringBuilder sb, JsonValue value)
    {
        switch (value.GetValueKind())
        {
            case JsonValueKind.String:
                WriteString(sb, value.GetValue<string>());
                break;
            case JsonValueKind.True:
                sb.Append("true");
                break;
            case JsonValueKind.False:
                sb.Append("false");
                break;
            case JsonValueKind.Number:
                // A value built in code keeps its CLR type, and TryGetValue converts no integer type to another.
                if (value.TryGetValue<long>(out long l))
                    sb.Append(l.ToString(CultureInfo.InvariantCulture));
                else if (value.TryGetValue<int>(out int i))
                    sb.Append(i.ToString(CultureInfo.InvariantCulture));
                else if (value.TryGetValue<uint>(out uint ui))
                    sb.Append(ui.ToString(CultureInfo.InvariantCulture));
                else if (value.TryGetValue<ulong>(out ulong u))
                    sb.Append(u.ToString(CultureInfo.InvariantCulture));
                else
                    sb.Append(value.GetValue<double>().ToString("R", CultureInfo.InvariantCulture));
                break;
            default:
                sb.Append(value.ToJsonString());
                break;
        }
    }

    /// <summary>Writes a JSON string with QEMU's escaping: ASCII only, <c>\uXXXX</c> for everything else.</summary>
    public static void WriteString(StringBuilder sb, string s)
    {
        sb.Append('"');
        foreach (var rune in s.EnumerateRunes())
        {
            int c = rune.Value;
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                default:
                    if (c >= 0x20 && c < 0x7f)
                    {
                        sb.Append((char)c);
                    }
                    else if (c < 0x10000)
                    {
                        sb.Append("\\u").Append(c.ToString("x4", CultureInfo.InvariantCulture));
                    }
                    else
                    {
                        string pair = rune.ToString();
                        sb.Append("\\u").Append(((int)pair[0]).ToString("x4", CultureInfo.InvariantCulture));
                        sb.Append("\\u").Append(((int)pair[1]).ToString("x4", CultureInfo.InvariantCulture));
                    }
                    break;
            }
        }
        sb.Append('"');
    }
}
