namespace Block.Qmp.Schema;

/// <summary>An event of the schema and the type of its <c>data</c>.</summary>
public sealed class QapiEvent
{
    internal QapiEvent(string name, QapiObjectType? dataType, bool boxed)
    {
        Name = name;
        DataType = dataType;
        Boxed = boxed;
    }

    /// <summary>The event name (<c>BLOCK_WRITE_THRESHOLD</c>).</summary>
    public string Name { get; }

    /// <summary>The type of the event's <c>data</c>; null if the event carries none.</summary>
    public QapiObjectType? DataType { get; }

    /// <summary>True if the schema declares the data <c>'boxed'</c>.</summary>
    public bool Boxed { get; }

    /// <inheritdoc />
    public override string ToString() => Name;
}
