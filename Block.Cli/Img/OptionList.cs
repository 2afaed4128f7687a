using Block.Cli.Common;

namespace Block.Cli.Img;

/// <summary>
/// qemu-img's handling of repeated <c>-o</c> arguments: each must be a well-formed list, and they are joined with
/// commas into one (later values of an option win).
/// </summary>
internal static class OptionList
{
    /// <summary>
    /// False for an empty list, one that starts with a comma, or one that ends in an odd number of commas (a doubled
    /// comma is an escaped one inside a value).
    /// </summary>
    public static bool IsValid(string text)
    {
        if (text.Length == 0 || text[0] == ',')
            return false;
        int trailing = text.Length - text.TrimEnd(',').Length;
        return trailing % 2 == 0;
    }

    /// <summary>Appends <paramref name="text"/> to <paramref name="options"/>; prints qemu-img's error and returns false if it is malformed.</summary>
    public static bool TryAccumulate(CliContext cli, ref string? options, string text)
    {
        if (!IsValid(text))
        {
            cli.Error($"Invalid option list: {text}");
            return false;
        }
        options = options is null ? text : options + "," + text;
        return true;
    }
}
