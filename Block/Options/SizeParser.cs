using System.Globalization;

namespace Block.Options;

/// <summary>
/// QEMU's size syntax: an integer or decimal fraction with an optional binary suffix (<c>k</c>/<c>K</c>, <c>M</c>,
/// <c>G</c>, <c>T</c>, <c>P</c>, <c>E</c>, or <c>B</c> for bytes), as in <c>qemu-img create x.img 1.5G</c> or
/// <c>cluster_size=64k</c>. Hexadecimal (<c>0x10000</c>) is accepted without fraction.
/// </summary>
public static class SizeParser
{
    /// <summary>Parses <paramref name="text"/>; a suffix-less number is multiplied by <paramref name="defaultUnit"/>.</summary>
    /// <returns>False for malformed, negative or out-of-range input.</returns>
    public static bool TryParse(string text, out ulong bytes, ulong defaultUnit = 1)
    {
        bytes = 0;
        if (string.IsNullOrEmpty(text) || char.IsWhiteSpace(text[0]) || text[0] == '-' || text[0] == '+')
            return false;

        int end = 0;
        bool hex = text.Length > 2 && text[0] == '0' && (text[1] == 'x' || text[1] == 'X');
        ulong integer;
        double fraction = 0;
        if (hex)
        {
            end = 2;
            while (end < text.Length && char.IsAsciiHexDigit(text[end]))
                end++;
            if (end == 2 || !ulong.TryParse(text.AsSpan(2, end - 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out integer))
                return false;
        }
        else
        {
            while (end < text.Length && char.IsAsciiDigit(text[end]))
                end++;
            if (end == 0 || !ulong.TryParse(text.AsSpan(0, end), NumberStyles.None, CultureInfo.InvariantCulture, out integer))
                return false;
            if (end < text.Length && text[end] == '.')
            {
                int start = end;
                end++;
                while (end < text.Length && char.IsAsciiDigit(text[end]))
                    end++;
                if (!double.TryParse("0" + text[start..end], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out fraction))
                    return false;
            }
        }

        ulong unit = defaultUnit;
        if (end < text.Length)
        {
            if (end != text.Length - 1)
                return false;
            unit = char.ToUpperInvariant(text[end]) switch
            {
                'B' => 1,
                'K' => 1UL << 10,
                'M' => 1UL << 20,
                'G' => 1UL << 30,
                'T' => 1UL << 40,
                'P' => 1UL << 50,
                'E' => 1UL << 60,
                _ => 0,
            };
            if (unit == 0)
                return false;
        }
        if (hex && unit != 1 && end < text.Length)
        {
            // "0x10k" is ambiguous in QEMU too; it refuses hex with a suffix other than B.
            return false;
        }
        if (fraction != 0 && unit == 1)
            return false;

        decimal total = (decimal)integer * unit + (decimal)fraction * unit;
        if (total > ulong.MaxValue)
            return false;
        bytes = (ulong)total;
        return true;
    }

    /// <summary>Parses an integer the way QEMU's <c>qemu_strtoi64</c> with base 0 does: decimal, <c>0x</c> hex or leading-zero octal.</summary>
    public static bool TryParseInt64(string text, out long value)
    {
        value = 0;
        if (string.IsNullOrEmpty(text))
            return false;
        bool negative = text[0] == '-';
        string body = negative || text[0] == '+' ? text[1..] : text;
        ulong magnitude;
        if (body.Length > 2 && body[0] == '0' && (body[1] == 'x' || body[1] == 'X'))
        {
            if (!ulong.TryParse(body.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out magnitude))
                return false;
        }
        else if (body.Length > 1 && body[0] == '0')
        {
            magnitude = 0;
            foreach (char c in body.AsSpan(1))
            {
                if (c < '0' || c > '7' || magnitude > (ulong.MaxValue >> 3))
                    return false;
                magnitude = magnitude * 8 + (ulong)(c - '0');
            }
        }
        else if (!ulong.TryParse(body, NumberStyles.None, CultureInfo.InvariantCulture, out magnitude))
        {
            return false;
        }
        if (negative)
        {
            if (magnitude > (ulong)long.MaxValue + 1)
                return false;
            value = unchecked(-(long)magnitude);
            return true;
        }
        if (magnitude > long.MaxValue)
            return false;
        value = (long)magnitude;
        return true;
    }
}
