using System.Globalization;
using System.Text.Json.Nodes;

namespace Block.Qmp.Schema;

/// <summary>
/// Builds <c>query-qmp-schema</c>'s answer: <c>SchemaInfo</c> objects in QEMU 7.2's form, with type names masked as
/// numbers in order of first use.
/// </summary>
internal sealed class QapiIntrospector
{
    private readonly QapiSchema _schema;
    private readonly QapiBuiltinType _int;
    private readonly QapiArrayType _intArray;
    private readonly Dictionary<QapiType, string> _names = new(ReferenceEqualityComparer.Instance);
    private readonly List<QapiType> _used = [];
    private int _nextNumber;

    private QapiIntrospector(QapiSchema schema)
    {
        _schema = schema;
        _int = (QapiBuiltinType)schema.FindType("int")!;
        _intArray = (QapiArrayType)schema.FindType("[int]")!;
    }

    /// <summary>
    /// The answer for the served commands (keyed by their index in <see cref="QapiSchema.Commands"/>, with the names
    /// each is served under), every event, and every type they reach.
    /// </summary>
    public static JsonArray Introspect(QapiSchema schema, IReadOnlyList<object> entities, SortedDictionary<int, List<string>> served)
    {
        var introspector = new QapiIntrospector(schema);
        var result = new JsonArray();
        int commandIndex = 0;
        foreach (var entity in entities)
        {
            if (entity is QapiCommand command)
            {
                if (served.TryGetValue(commandIndex++, out var names))
                {
                    foreach (var name in names)
                        result.Add((JsonNode)introspector.Command(name, command));
                }
            }
            else if (entity is QapiEvent ev)
            {
                result.Add((JsonNode)new JsonObject
                {
                    ["name"] = ev.Name,
                    ["meta-type"] = "event",
                    ["arg-type"] = introspector.Use(ev.DataType ?? schema.EmptyObject),
                });
            }
        }
        // Describing a type may use new ones, which join the end of the list.
        for (int i = 0; i < introspector._used.Count; i++)
            result.Add((JsonNode)introspector.Describe(introspector._used[i]));
        return result;
    }

    private JsonObject Command(string name, QapiCommand command) => new()
    {
        ["name"] = name,
        ["meta-type"] = "command",
        ["arg-type"] = Use(command.ArgumentType ?? _schema.EmptyObject),
        ["ret-type"] = Use(command.ReturnType ?? _schema.EmptyObject),
    };

    /// <summary>The name the answer uses for <paramref name="type"/>; the first use queues its description.</summary>
    private string Use(QapiType type)
    {
        // Every integer type is shown as int, and an array of integers as [int].
        if (type is QapiBuiltinType { IsInteger: true })
            type = _int;
        else if (type is QapiArrayType { ElementType: QapiBuiltinType { IsInteger: true } })
            type = _intArray;

        if (_names.TryGetValue(type, out var name))
            return name;
        _used.Add(type);
        name = type switch
        {
            QapiBuiltinType => type.Name,
            QapiArrayType array => "[" + Use(array.ElementType) + "]",
            _ => (_nextNumber++).ToString(CultureInfo.InvariantCulture),
        };
        _names.Add(type, name);
        return name;
    }

    private JsonObject Describe(QapiType type)
    {
        var info = new JsonObject
        {
            ["name"] = _names[type],
        };
        switch (type)
        {
            case QapiBuiltinType builtin:
                info["meta-type"] = "builtin";
                info["json-type"] = builtin.JsonType;
                break;
            case QapiEnumType enumType:
                info["meta-type"] = "enum";
                var members = new JsonArray();
                var values = new JsonArray();
                foreach (var value in enumType.Values)
                {
                    members.Add((JsonNode)new JsonObject { ["name"] = value });
                    values.Add((JsonNode)JsonValue.Create(value));
                }
                info["members"] = members;
                info["values"] = values;
                break;
            case QapiArrayType array:
                info["meta-type"] = "array";
                info["element-type"] = Use(array.ElementType);
                break;
            case QapiObjectType obj:
                info["meta-type"] = "object";
                var objectMembers = new JsonArray();
                foreach (var member in obj.Members)
                {
                    var m = new JsonObject
                    {
                        ["name"] = member.Name,
                        ["type"] = Use(member.Type),
                    };
                    if (member.Optional)
                        m["default"] = null;
                    objectMembers.Add((JsonNode)m);
                }
                info["members"] = objectMembers;
                if (obj.Tag != null)
                {
                    info["tag"] = obj.Tag;
                    // Every tag value is listed; one without a branch adds no members (the empty object), as 7.2 shows it.
                    var variants = new JsonArray();
                    foreach (var value in obj.TagType!.Values)
                    {
                        variants.Add((JsonNode)new JsonObject
                        {
                            ["case"] = value,
                            ["type"] = Use(obj.FindVariant(value)?.Type ?? _schema.EmptyObject),
                        });
                    }
                    info["variants"] = variants;
                }
                break;
            case QapiAlternateType alternate:
                info["meta-type"] = "alternate";
                var branches = new JsonArray();
                foreach (var alternative in alternate.Alternatives)
                    branches.Add((JsonNode)new JsonObject { ["type"] = Use(alternative.Type) });
                info["members"] = branches;
                break;
        }
        return info;
    }
}
