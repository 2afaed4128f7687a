namespace Block.Drivers;

/// <summary>The value types <c>qemu-img create -o</c> options have.</summary>
public enum CreateOptionType
{
    /// <summary>Free text or an enumeration.</summary>
    String,
    /// <summary><c>on</c>/<c>off</c>.</summary>
    Bool,
    /// <summary>An integer.</summary>
    Number,
    /// <summary>A size with optional suffix.</summary>
    Size,
}

/// <summary>One <c>-o</c> option of a driver's image creation, as <c>-o help</c> lists it.</summary>
/// <param name="Name">The option's name (<c>cluster_size</c>).</param>
/// <param name="Type">Its value type.</param>
/// <param name="Help">The help text.</param>
/// <param name="DefaultValue">The default, when <c>-o help</c> shows one.</param>
public sealed record CreateOptionDescriptor(string Name, CreateOptionType Type, string Help, string? DefaultValue = null);
