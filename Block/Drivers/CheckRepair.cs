namespace Block.Drivers;

/// <summary>What <c>qemu-img check -r</c> may repair.</summary>
[Flags]
public enum CheckRepair
{
    /// <summary>Only check.</summary>
    None = 0,
    /// <summary>Free leaked clusters.</summary>
    Leaks = 1,
    /// <summary>Fix errors too (may rebuild refcounts).</summary>
    Errors = 2,
    /// <summary><c>-r all</c>.</summary>
    All = Leaks | Errors,
}
