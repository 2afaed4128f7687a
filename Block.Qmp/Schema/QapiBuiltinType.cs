namespace Block.Qmp.Schema;

/// <summary>A builtin type (<c>str</c>, <c>int</c>, <c>uint32</c>, <c>size</c>, <c>any</c>…).</summary>
public sealed class QapiBuiltinType : QapiType
{
    internal QapiBuiltinType(string name, QapiBuiltinKind kind)
        : base(name, false)
    {
        Kind = kind;
    }

    /// <summary>Which builtin.</summary>
    public QapiBuiltinKind Kind { get; }

    /// <inheritdoc />
    public override QapiMetaType MetaType => QapiMetaType.Builtin;

    /// <summary>True for the integer types and <c>size</c>, which introspection shows as <c>int</c>.</summary>
    public bool IsInteger => Kind is >= QapiBuiltinKind.Int and <= QapiBuiltinKind.Size;

    /// <summary>
    /// The JSON type introspection reports (<c>json-type</c>): <c>string</c>, <c>int</c>, <c>boolean</c>,
    /// <c>number</c>, <c>value</c> (for <c>any</c>) or <c>null</c>.
    /// </summary>
    public string JsonType => Kind switch
    {
        QapiBuiltinKind.Str => "string",
        QapiBuiltinKind.Bool => "boolean",
        QapiBuiltinKind.Number => "number",
        QapiBuiltinKind.Any => "value",
        QapiBuiltinKind.Null => "null",
        _ => "int",
    };
}
