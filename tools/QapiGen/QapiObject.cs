namespace Block.Tools.QapiGen;

/// <summary>A QAPI object: its members in text order, and where it was written (for messages).</summary>
internal sealed class QapiObject
{
    /// <summary>The members, in text order. Values are <see cref="string"/>, <see cref="bool"/>,
    /// <see cref="List{T}"/> of values, or <see cref="QapiObject"/>.</summary>
    public List<KeyValuePair<string, object>> Members { get; } = [];

    /// <summary>The file the object came from.</summary>
    public string File { get; init; } = "";

    /// <summary>The line it starts on.</summary>
    public int Line { get; set; }

    /// <summary>Where the object was written, as <c>file:line</c>.</summary>
    public string Location => $"{File}:{Line}";

    /// <summary>True if the object has member <paramref name="key"/>.</summary>
    public bool Has(string key) => Members.Exists(m => m.Key == key);

    /// <summary>The value of member <paramref name="key"/>, or null.</summary>
    public object? Get(string key)
    {
        foreach (var m in Members)
        {
            if (m.Key == key)
                return m.Value;
        }
        return null;
    }
}
