namespace Block.Qmp.Schema;

/// <summary>An enum: a string that must be one of its values.</summary>
public sealed class QapiEnumType : QapiType
{
    private readonly HashSet<string> _values;

    internal QapiEnumType(string name, bool isImplicit, IReadOnlyList<string> values)
        : base(name, isImplicit)
    {
        Values = values;
        _values = new HashSet<string>(values, StringComparer.Ordinal);
    }

    /// <summary>The values, in schema order.</summary>
    public IReadOnlyList<string> Values { get; }

    /// <inheritdoc />
    public override QapiMetaType MetaType => QapiMetaType.Enum;

    /// <summary>True if <paramref name="value"/> is one of the values (case-sensitive, as in QEMU).</summary>
    public bool Contains(string value) => _values.Contains(value);
}
