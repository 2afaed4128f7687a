namespace Block.Options;

/// <summary>The rules for node names (and job ids): a letter, then letters, digits, '-', '.' or '_'.</summary>
public static class NodeNames
{
    /// <summary>QEMU truncates names to 31 characters; longer names are refused here instead of silently cut.</summary>
    public const int MaxLength = 31;

    /// <summary>True if <paramref name="name"/> is a valid user-given name.</summary>
    public static bool IsValid(string name)
    {
        if (name.Length == 0 || name.Length > MaxLength || !char.IsAsciiLetter(name[0]))
            return false;
        foreach (char c in name)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c != '-' && c != '.' && c != '_')
                return false;
        }
        return true;
    }

    /// <summary>Throws "Invalid node name" unless <paramref name="name"/> is valid.</summary>
    public static void Validate(string name)
    {
        if (!IsValid(name))
            throw new BlockOptionsException("Invalid node name");
    }
}
