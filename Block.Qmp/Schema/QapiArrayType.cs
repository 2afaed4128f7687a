namespace Block.Qmp.Schema;

/// <summary>An array of one element type, named <c>[T]</c>.</summary>
public sealed class QapiArrayType : QapiType
{
    internal QapiArrayType(QapiType elementType)
        : base("[" + elementType.Name + "]", false)
    {
        ElementType = elementType;
    }

    /// <summary>The type of every element.</summary>
    public QapiType ElementType { get; }

    /// <inheritdoc />
    public override QapiMetaType MetaType => QapiMetaType.Array;
}
