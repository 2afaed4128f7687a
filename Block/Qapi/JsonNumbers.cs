using System.Text.Json;
using System.Text.Json.Nodes;

namespace Block.Qapi;

/// <summary>Integer reads of JSON values, whatever integer type they were built from.</summary>
/// <remarks>
/// A <see cref="JsonValue"/> parsed from text converts to any integer type that holds it, but one built in code
/// (<c>new JsonObject { ["size"] = 1024 }</c>) keeps its CLR type and <c>TryGetValue&lt;long&gt;</c> fails on an
/// <c>int</c>. In-process callers build options and QMP arguments that way, so every integer read goes through here.
/// </remarks>
public static class JsonNumbers
{
    /// <summary>The value as an <see cref="long"/>, if it is an integer that fits.</summary>
    public static bool TryGetInt64(JsonValue value, out long result)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (value.GetValueKind() != JsonValueKind.Number)
        {
            result = 0;
            return false;
        }
        if (value.TryGetValue(out result))
            return true;
        if (value.TryGetValue(out int i))
            result = i;
        else if (value.TryGetValue(out uint ui))
            result = ui;
        else if (value.TryGetValue(out short s))
            result = s;
        else if (value.TryGetValue(out ushort us))
            result = us;
        else if (value.TryGetValue(out sbyte sb))
            result = sb;
        else if (value.TryGetValue(out byte b))
            result = b;
        else if (value.TryGetValue(out ulong ul) && ul <= long.MaxValue)
            result = (long)ul;
        else
            return false;
        return true;
    }

    /// <summary>The value as an <see cref="ulong"/>, if it is a non-negative integer that fits.</summary>
    public static bool TryGetUInt64(JsonValue value, out ulong result)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (value.GetValueKind() == JsonValueKind.Number && value.TryGetValue(out result))
            return true;
        if (TryGetInt64(value, out long l) && l >= 0)
        {
            result = (ulong)l;
            return true;
        }
        result = 0;
        return false;
    }
}
