namespace Block.Qmp.Schema;

/// <summary>The kinds of QAPI types, as <c>query-qmp-schema</c> names them (<c>meta-type</c>).</summary>
public enum QapiMetaType
{
    /// <summary>A builtin: <c>str</c>, the integer types, <c>size</c>, <c>bool</c>, <c>number</c>, <c>any</c>, <c>null</c>.</summary>
    Builtin,
    /// <summary>An enumeration of strings.</summary>
    Enum,
    /// <summary>A JSON array of one element type.</summary>
    Array,
    /// <summary>A JSON object: a struct, or a flat union (a struct plus the members of the branch its tag selects).</summary>
    Object,
    /// <summary>A value of one of several types, told apart by its JSON type.</summary>
    Alternate,
}
