namespace Block.Qmp.Schema;

/// <summary>
/// An object type: a struct, or a flat union (the members of its base, among them the tag, then the members of the
/// branch the tag's value selects).
/// </summary>
/// <remarks>
/// <see cref="Members"/> holds the base's members first and then the type's own, because that is the order QEMU
/// visits them, and so the order in which it reports the first bad one.
/// </remarks>
public sealed class QapiObjectType : QapiType
{
    private IReadOnlyList<QapiMember> _members = [];
    private IReadOnlyList<QapiVariant> _variants = [];
    private Dictionary<string, QapiMember> _membersByName = new(StringComparer.Ordinal);
    private Dictionary<string, QapiVariant> _variantsByCase = new(StringComparer.Ordinal);

    internal QapiObjectType(string name, bool isImplicit)
        : base(name, isImplicit)
    {
    }

    /// <inheritdoc />
    public override QapiMetaType MetaType => QapiMetaType.Object;

    /// <summary>The base struct whose members come first, if any.</summary>
    public QapiObjectType? Base { get; private set; }

    /// <summary>Every member in visiting order: the base's, then the type's own.</summary>
    public IReadOnlyList<QapiMember> Members => _members;

    /// <summary>For a flat union, the name of the tag member (the discriminator); null for a struct.</summary>
    public string? Tag { get; private set; }

    /// <summary>For a flat union, the tag's enum type.</summary>
    public QapiEnumType? TagType { get; private set; }

    /// <summary>For a flat union, the branches the schema defines, in schema order.</summary>
    public IReadOnlyList<QapiVariant> Variants => _variants;

    /// <summary>True for a flat union.</summary>
    public bool IsUnion => Tag != null;

    /// <summary>The member named <paramref name="name"/> (the base's included), or null.</summary>
    public QapiMember? FindMember(string name) => _membersByName.GetValueOrDefault(name);

    /// <summary>The branch the tag value <paramref name="tagValue"/> selects, or null if it adds no members.</summary>
    public QapiVariant? FindVariant(string tagValue) => _variantsByCase.GetValueOrDefault(tagValue);

    internal void Initialize(QapiObjectType? baseType, IReadOnlyList<QapiMember> members, string? tag, IReadOnlyList<QapiVariant> variants)
    {
        Base = baseType;
        _members = members;
        _membersByName = members.ToDictionary(m => m.Name, StringComparer.Ordinal);
        Tag = tag;
        TagType = tag is null ? null : (QapiEnumType)_membersByName[tag].Type;
        _variants = variants;
        _variantsByCase = variants.ToDictionary(v => v.Case, StringComparer.Ordinal);
    }
}
