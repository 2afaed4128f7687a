namespace Block.Qmp.Schema;

/// <summary>
/// An alternate: a value of one of several types with different JSON types (<c>BlockdevRef</c> is an object of
/// options or a node name string).
/// </summary>
public sealed class QapiAlternateType : QapiType
{
    private IReadOnlyList<QapiAlternative> _alternatives = [];

    internal QapiAlternateType(string name)
        : base(name, false)
    {
    }

    /// <summary>The branches, in schema order.</summary>
    public IReadOnlyList<QapiAlternative> Alternatives => _alternatives;

    /// <inheritdoc />
    public override QapiMetaType MetaType => QapiMetaType.Alternate;

    internal void Initialize(IReadOnlyList<QapiAlternative> alternatives) => _alternatives = alternatives;
}
