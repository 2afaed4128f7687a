namespace Block.Options;

/// <summary>The rules for node names (and job ids): a letter, then letters, digits, '-', '.' or '_'.</summary>
public static class NodeNames
{
    /// <summary>The longest node name: QEMU keeps names in 32 bytes with the terminating zero and refuses longer ones.</summary>
    public const int MaxLength = 31;

    /// <summary>True if <paramref name="name"/> is a valid user-given name.</summary>
    public static bool IsValid(string name) => name.Length > 0 && name.Length <= MaxLength && IsWellFormed(name);

    /// <summary>Throws QEMU 7.2's "Invalid node-name: 'x'" or "Node name too long" unless <paramref name="name"/> is valid.</summary>
    public static void Validate(string name)
    {
        if (name.Length == 0 || !IsWellFormed(name))
            throw new BlockOptionsException($"Invalid node-name: '{name}'");
        if (name.Length > MaxLength)
            throw new BlockOptionsException("Node name too long");
    }

    /// <summary>True if <paramref name="name"/> is a letter followed by letters, digits, '-', '.' or '_' (QEMU's <c>id_wellformed</c>, any length).</summary>
    public static bool IsWellFormed(string name)
    {
        if (name.Length == 0 || !char.IsAsciiLetter(name[0]))
            return false;
        foreach (char c in name)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c != '-' && c != '.' && c != '_')
                return false;
        }
        return true;
    }
}
