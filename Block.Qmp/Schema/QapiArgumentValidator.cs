using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Block.Qmp.Schema;

/// <summary>
/// Checks a JSON value against a schema type the way QEMU 7.2's QMP input visitor does, and fails with its texts.
/// </summary>
/// <remarks>
/// QEMU names a member in two ways, and the texts below keep to each (checked against qemu-storage-daemon 7.2):
/// <list type="bullet">
/// <item>by its full path (<c>options.file.zz</c>, <c>bitmaps[1].name</c>) when a member is missing or unexpected,
/// has the wrong JSON type, or is not a valid <c>uint64</c>/<c>size</c>;</item>
/// <item>by its own name only, and <c>null</c> for an array element, when an enum value is unknown, an integer is out
/// of a narrow type's range, or a value fits no branch of an alternate.</item>
/// </list>
/// </remarks>
internal sealed class QapiArgumentValidator
{
    /// <summary>
    /// The deepest value checked. QEMU's JSON parser refuses deeper nesting than this; a tree built in process could
    /// be deeper, and checking it would recurse without bound (the thread's stack is checked too).
    /// </summary>
    internal const int MaxDepth = 1024;

    private static readonly JsonObject s_noArguments = new();

    // The path of the value being checked: a member name, or null with an index for an array element.
    private readonly List<(string? Member, int Index)> _path = [];

    private QapiArgumentValidator()
    {
    }

    /// <summary>Checks <paramref name="arguments"/> against <paramref name="type"/> (null: a command without arguments).</summary>
    /// <exception cref="BlockOptionsException">The first mismatch, in QEMU's words.</exception>
    public static void Validate(QapiObjectType? type, JsonObject? arguments)
    {
        arguments ??= s_noArguments;
        if (type is null)
        {
            foreach (var (key, _) in arguments)
                throw new BlockOptionsException($"Parameter '{key}' is unexpected");
            return;
        }
        new QapiArgumentValidator().CheckObject(type, arguments);
    }

    /// <summary>Checks a value named <paramref name="name"/> against <paramref name="type"/> (for tests of single types).</summary>
    internal static void ValidateValue(QapiType type, JsonNode? value, string name)
    {
        var validator = new QapiArgumentValidator();
        validator._path.Add((name, 0));
        validator.CheckValue(type, value, name);
    }

    private void CheckObject(QapiObjectType type, JsonObject obj)
    {
        foreach (var member in type.Members)
            CheckMember(member, obj);
        QapiObjectType? branch = null;
        if (type.Tag != null && obj[type.Tag] is JsonValue tag && tag.GetValueKind() == JsonValueKind.String)
        {
            branch = type.FindVariant(tag.GetValue<string>())?.Type;
            if (branch != null)
                CheckBranch(branch, obj, type);
        }
        if (branch is null)
            CheckUnexpected(obj, type, null);
    }

    // The members of a union's branch are checked in the union's own object, and unexpected ones after them.
    private void CheckBranch(QapiObjectType branch, JsonObject obj, QapiObjectType union)
    {
        foreach (var member in branch.Members)
            CheckMember(member, obj);
        CheckUnexpected(obj, union, branch);
    }

    private void CheckMember(QapiMember member, JsonObject obj)
    {
        if (!obj.TryGetPropertyValue(member.Name, out var value))
        {
            if (!member.Optional)
                throw new BlockOptionsException($"Parameter '{FullName(member.Name)}' is missing");
            return;
        }
        Push(member.Name, 0);
        CheckValue(member.Type, value, member.Name);
        _path.RemoveAt(_path.Count - 1);
    }

    private void CheckUnexpected(JsonObject obj, QapiObjectType type, QapiObjectType? branch)
    {
        foreach (var (key, _) in obj)
        {
            if (type.FindMember(key) is null && branch?.FindMember(key) is null)
                throw new BlockOptionsException($"Parameter '{FullName(key)}' is unexpected");
        }
    }

    /// <summary>Checks <paramref name="value"/>, whose path is on <see cref="_path"/>; <paramref name="name"/> is its own name (null for an array element).</summary>
    private void CheckValue(QapiType type, JsonNode? value, string? name)
    {
        switch (type)
        {
            case QapiBuiltinType builtin:
                CheckBuiltin(builtin, value, name);
                break;
            case QapiEnumType enumType:
                if (value is not JsonValue v || v.GetValueKind() != JsonValueKind.String)
                    throw TypeError("string");
                string s = v.GetValue<string>();
                if (!enumType.Contains(s))
                    throw new BlockOptionsException($"Parameter '{name ?? "null"}' does not accept value '{s}'");
                break;
            case QapiArrayType arrayType:
                if (value is not JsonArray array)
                    throw TypeError("array");
                for (int i = 0; i < array.Count; i++)
                {
                    Push(null, i);
                    CheckValue(arrayType.ElementType, array[i], null);
                    _path.RemoveAt(_path.Count - 1);
                }
                break;
            case QapiObjectType objectType:
                if (value is not JsonObject obj)
                    throw TypeError("object");
                CheckObject(objectType, obj);
                break;
            case QapiAlternateType alternate:
                var chosen = Choose(alternate, value)
                    ?? throw new BlockOptionsException($"Invalid parameter type for '{name ?? "null"}', expected: {alternate.Name}");
                CheckValue(chosen, value, name);
                break;
        }
    }

    private void CheckBuiltin(QapiBuiltinType type, JsonNode? value, string? name)
    {
        switch (type.Kind)
        {
            case QapiBuiltinKind.Any:
                return;
            case QapiBuiltinKind.Null:
                if (value is not null)
                    throw TypeError("null");
                return;
            case QapiBuiltinKind.Str:
                if (KindOf(value) != JsonValueKind.String)
                    throw TypeError("string");
                return;
            case QapiBuiltinKind.Bool:
                if (KindOf(value) is not (JsonValueKind.True or JsonValueKind.False))
                    throw TypeError("boolean");
                return;
            case QapiBuiltinKind.Number:
                if (KindOf(value) != JsonValueKind.Number)
                    throw TypeError("number");
                return;
            case QapiBuiltinKind.Int or QapiBuiltinKind.Int64 or QapiBuiltinKind.Int8 or QapiBuiltinKind.Int16 or QapiBuiltinKind.Int32:
            {
                if (Classify(value, out long l, out _) != NumberClass.Int64)
                    throw TypeError("integer");
                var (min, max, cType) = type.Kind switch
                {
                    QapiBuiltinKind.Int8 => (sbyte.MinValue, sbyte.MaxValue, "int8_t"),
                    QapiBuiltinKind.Int16 => (short.MinValue, short.MaxValue, "int16_t"),
                    QapiBuiltinKind.Int32 => (int.MinValue, int.MaxValue, "int32_t"),
                    _ => (long.MinValue, long.MaxValue, "int64_t"),
                };
                if (l < min || l > max)
                    throw new BlockOptionsException($"Parameter '{name ?? "null"}' expects {cType}");
                return;
            }
            default:
            {
                // uint64 and size take any integer QEMU's parser reads as one (up to 2^64-1); a negative one is
                // taken modulo 2^64, as QEMU accepts it for backward compatibility.
                ulong u;
                switch (Classify(value, out long l, out ulong large))
                {
                    case NumberClass.Int64:
                        u = unchecked((ulong)l);
                        break;
                    case NumberClass.UInt64:
                        u = large;
                        break;
                    default:
                        throw new BlockOptionsException($"Parameter '{FullName()}' expects uint64");
                }
                var (max, cType) = type.Kind switch
                {
                    QapiBuiltinKind.UInt8 => (byte.MaxValue, "uint8_t"),
                    QapiBuiltinKind.UInt16 => (ushort.MaxValue, "uint16_t"),
                    QapiBuiltinKind.UInt32 => (uint.MaxValue, "uint32_t"),
                    _ => (ulong.MaxValue, "uint64_t"),
                };
                if (u > max)
                    throw new BlockOptionsException($"Parameter '{name ?? "null"}' expects {cType}");
                return;
            }
        }
    }

    /// <summary>The branch of <paramref name="alternate"/> that takes a value of <paramref name="value"/>'s JSON type, or null.</summary>
    private static QapiType? Choose(QapiAlternateType alternate, JsonNode? value)
    {
        var kind = KindOf(value);
        foreach (var alternative in alternate.Alternatives)
        {
            bool takes = alternative.Type switch
            {
                QapiObjectType => kind == JsonValueKind.Object,
                QapiArrayType => kind == JsonValueKind.Array,
                QapiEnumType => kind == JsonValueKind.String,
                QapiBuiltinType b => b.Kind switch
                {
                    QapiBuiltinKind.Str => kind == JsonValueKind.String,
                    QapiBuiltinKind.Bool => kind is JsonValueKind.True or JsonValueKind.False,
                    QapiBuiltinKind.Null => kind == JsonValueKind.Null,
                    QapiBuiltinKind.Any => true,
                    _ => kind == JsonValueKind.Number,
                },
                _ => false,
            };
            if (takes)
                return alternative.Type;
        }
        return null;
    }

    private static JsonValueKind KindOf(JsonNode? node) => node switch
    {
        null => JsonValueKind.Null,
        JsonObject => JsonValueKind.Object,
        JsonArray => JsonValueKind.Array,
        _ => node.GetValueKind(),
    };

    private enum NumberClass
    {
        NotANumber,
        Int64,
        UInt64,
        Float,
    }

    /// <summary>
    /// Classifies a number as QEMU's JSON parser does: an integer that fits int64, one that fits only uint64, or a
    /// float (a fraction, an exponent, or an integer beyond both, which QEMU reads as a double).
    /// </summary>
    private static NumberClass Classify(JsonNode? node, out long int64, out ulong uint64)
    {
        int64 = 0;
        uint64 = 0;
        if (node is not JsonValue value || value.GetValueKind() != JsonValueKind.Number)
            return NumberClass.NotANumber;
        if (value.TryGetValue(out int64))
            return NumberClass.Int64;
        if (value.TryGetValue(out uint64))
            return NumberClass.UInt64;
        // A value built in process from another CLR type: its JSON text decides, as on the wire.
        string text = value.ToJsonString();
        if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int64))
            return NumberClass.Int64;
        if (ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out uint64))
            return NumberClass.UInt64;
        return NumberClass.Float;
    }

    private void Push(string? member, int index)
    {
        _path.Add((member, index));
        if (_path.Count > MaxDepth || !RuntimeHelpers.TryEnsureSufficientExecutionStack())
            throw new BlockOptionsException($"Parameter '{FullName()}' is nested too deeply");
    }

    private BlockOptionsException TypeError(string expected) =>
        new($"Invalid parameter type for '{FullName()}', expected: {expected}");

    /// <summary>The path of the current value, or of its member <paramref name="member"/>: <c>a.b[2].c</c>.</summary>
    private string FullName(string? member = null)
    {
        var sb = new StringBuilder();
        foreach (var (name, index) in _path)
            Append(sb, name, index);
        if (member != null)
            Append(sb, member, 0);
        return sb.ToString();

        static void Append(StringBuilder sb, string? name, int index)
        {
            if (name is null)
            {
                sb.Append('[').Append(index.ToString(CultureInfo.InvariantCulture)).Append(']');
                return;
            }
            if (sb.Length > 0)
                sb.Append('.');
            sb.Append(name);
        }
    }
}
