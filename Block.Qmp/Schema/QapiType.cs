namespace Block.Qmp.Schema;

/// <summary>A type of the schema: a builtin, an enum, an array, an object (struct or flat union) or an alternate.</summary>
public abstract class QapiType
{
    private protected QapiType(string name, bool isImplicit)
    {
        Name = name;
        IsImplicit = isImplicit;
    }

    /// <summary>
    /// The type's name: the schema's (<c>BlockInfo</c>), a builtin's (<c>uint64</c>), <c>[T]</c> for an array, or for
    /// an implicit type the name QEMU gives it (<c>q_obj_block_resize-arg</c>, <c>ImageInfoSpecificKind</c>).
    /// </summary>
    public string Name { get; }

    /// <summary>The kind of type.</summary>
    public abstract QapiMetaType MetaType { get; }

    /// <summary>
    /// True for a type the schema does not name but implies: an inline argument or base object, the wrapper and
    /// kind enum of a simple union, and the empty object.
    /// </summary>
    public bool IsImplicit { get; }

    /// <inheritdoc />
    public override string ToString() => Name;
}
