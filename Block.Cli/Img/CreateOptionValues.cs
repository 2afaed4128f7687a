using System.Globalization;
using System.Numerics;
using System.Text.RegularExpressions;
using Block.Drivers;
using Block.Options;

namespace Block.Cli.Img;

/// <summary>
/// QemuOpts' checks on <c>-o</c> values, done as each option is set and so before anything is printed or created:
/// booleans are <c>on</c>/<c>off</c> (or yes/no, true/false, y/n), sizes take suffixes, numbers are C integers
/// (<c>0x10</c>, octal <c>010</c>). Sizes and numbers are rewritten as the decimal values qemu-img shows on its
/// "Formatting" line.
/// </summary>
internal static partial class CreateOptionValues
{
    /// <summary>
    /// Checks every option in the order given against <paramref name="descriptors"/> and normalises its value.
    /// </summary>
    /// <param name="descriptors">The options the format and protocol take.</param>
    /// <param name="options">The options, in the order given; values are replaced by their normal form.</param>
    /// <param name="warn">Prints a warning (the deprecated <c>0x10k</c> size form).</param>
    /// <exception cref="BlockOptionsException">An unknown option or a bad value, with qemu-img's message.</exception>
    public static void Normalise(IReadOnlyList<CreateOptionDescriptor> descriptors, Dictionary<string, string> options, Action<string> warn)
    {
        foreach (var key in options.Keys.ToList())
        {
            var descriptor = descriptors.FirstOrDefault(d => d.Name == key)
                ?? throw new BlockOptionsException($"Invalid parameter '{key}'");
            string value = options[key];
            switch (descriptor.Type)
            {
                case CreateOptionType.Bool:
                    if (value is not ("on" or "off" or "yes" or "no" or "true" or "false" or "y" or "n"))
                        throw new BlockOptionsException($"Parameter '{key}' expects 'on' or 'off'");
                    break;
                case CreateOptionType.Size:
                    options[key] = Signed(ParseSize(key, value, warn));
                    break;
                case CreateOptionType.Number:
                    options[key] = Signed(ParseNumber(key, value));
                    break;
            }
        }
    }

    /// <summary>True for a boolean option's "on" spellings (the value passed <see cref="Normalise"/>).</summary>
    public static bool IsTrue(string value) => value is "on" or "yes" or "true" or "y";

    /// <summary>QEMU keeps values as unsigned 64-bit numbers and prints them signed (<c>-1</c>, not 2^64-1).</summary>
    private static string Signed(ulong value) => unchecked((long)value).ToString(CultureInfo.InvariantCulture);

    private static ulong ParseSize(string key, string value, Action<string> warn)
    {
        if (SizeParser.TryParse(value, out ulong bytes, out bool hexWithSuffix))
        {
            if (hexWithSuffix)
                warn($"Using a multiplier suffix on hex numbers is deprecated: {value}");
            return bytes;
        }
        if (IsOutOfRange(value))
            throw new BlockOptionsException($"Value '{value}' is out of range for parameter '{key}'");
        throw new BlockOptionsException($"Parameter '{key}' expects a non-negative number below 2^64\n"
            + "Optional suffix k, M, G, T, P or E means kilo-, mega-, giga-, tera-, peta-\nand exabytes, respectively.");
    }

    /// <summary>
    /// True for well-formed size syntax that <see cref="SizeParser"/> refused, which can only be for a value of 2^64
    /// or more (a fraction without a multiplier is the one other refusal).
    /// </summary>
    private static bool IsOutOfRange(string value)
    {
        var match = SizeSyntax().Match(value);
        if (!match.Success)
            return false;
        bool fraction = match.Groups["fraction"].Value.Trim('.', '0').Length > 0;
        bool multiplier = match.Groups["suffix"].Value is { Length: 1 } suffix && suffix is not ("b" or "B");
        return !fraction || multiplier;
    }

    [GeneratedRegex(@"^\s*\+?(0[xX][0-9a-fA-F]+|[0-9]+(?<fraction>\.[0-9]*)?)(?<suffix>[bBkKmMgGtTpPeE]?)$")]
    private static partial Regex SizeSyntax();

    /// <summary>C's <c>strtoull</c> with base 0, as QEMU's <c>qemu_strtou64</c>: the whole text must be one integer.</summary>
    private static ulong ParseNumber(string key, string value)
    {
        int pos = 0;
        while (pos < value.Length && char.IsWhiteSpace(value[pos]))
            pos++;
        bool negative = false;
        if (pos < value.Length && value[pos] is '+' or '-')
            negative = value[pos++] == '-';
        int radix = 10;
        if (pos + 1 < value.Length && value[pos] == '0' && value[pos + 1] is 'x' or 'X' && pos + 2 < value.Length && Uri.IsHexDigit(value[pos + 2]))
        {
            radix = 16;
            pos += 2;
        }
        else if (pos < value.Length && value[pos] == '0')
        {
            radix = 8;
        }
        int start = pos;
        BigInteger magnitude = 0;
        while (pos < value.Length && DigitValue(value[pos]) is int d && d < radix)
        {
            magnitude = magnitude * radix + d;
            pos++;
        }
        if (pos == start || pos != value.Length)
            throw new BlockOptionsException($"Parameter '{key}' expects a number");
        if (magnitude > ulong.MaxValue)
            throw new BlockOptionsException($"Value '{value}' is too large for parameter '{key}'");
        ulong result = (ulong)magnitude;
        return negative ? unchecked(0UL - result) : result;
    }

    private static int? DigitValue(char c) => c switch
    {
        >= '0' and <= '9' => c - '0',
        >= 'a' and <= 'f' => c - 'a' + 10,
        >= 'A' and <= 'F' => c - 'A' + 10,
        _ => null,
    };
}
