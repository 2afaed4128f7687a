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
    public static bool TryParse(string text, out ulong bytes, ulong defaultUnit = 1) =>
        TryParse(text, out bytes, out _, defaultUnit);

    /// <summary>
    /// Parses like QEMU's <c>qemu_strtosz</c>: leading blanks and <c>+</c> are skipped, the integer part is decimal
    /// (<c>010</c> is ten) or <c>0x</c> hexadecimal, a fraction needs a multiplier above one unless it is zero, and the
    /// fractional bytes round half up (<c>1.1k</c> = 1126).
    /// </summary>
    /// <param name="text">The text.</param>
    /// <param name="bytes">The value.</param>
    /// <param name="hexWithSuffix">True for the deprecated <c>0x10k</c> form, which QEMU accepts with a warning.</param>
    /// <param name="defaultUnit">The multiplier without a suffix.</param>
    public static bool TryParse(string text, out ulong bytes, out bool hexWithSuffix, ulong defaultUnit = 1)
    {
        bytes = 0;
        hexWithSuffix = false;
        if (text is null)
            return false;
        int pos = 0;
        while (pos < text.Length && char.IsWhiteSpace(text[pos]))
            pos++;
        if (pos < text.Length && text[pos] == '+')
            pos++;
        if (pos >= text.Length || text[pos] == '-')
            return false;

        bool hex = pos + 1 < text.Length && text[pos] == '0' && (text[pos + 1] == 'x' || text[pos + 1] == 'X');
        System.Numerics.BigInteger integer;
        int digitsStart;
        if (hex)
        {
            pos += 2;
            digitsStart = pos;
            while (pos < text.Length && char.IsAsciiHexDigit(text[pos]))
                pos++;
            if (pos == digitsStart)
                return false;
            integer = System.Numerics.BigInteger.Parse("0" + text[digitsStart..pos], NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture);
        }
        else
        {
            digitsStart = pos;
            while (pos < text.Length && char.IsAsciiDigit(text[pos]))
                pos++;
            if (pos == digitsStart)
                return false;
            integer = System.Numerics.BigInteger.Parse(text[digitsStart..pos], CultureInfo.InvariantCulture);
        }

        // The fraction as an exact decimal: numerator / 10^digits.
        System.Numerics.BigInteger fractionNumerator = 0;
        System.Numerics.BigInteger fractionDenominator = 1;
        if (pos < text.Length && text[pos] == '.')
        {
            if (hex)
                return false;
            pos++;
            int fracStart = pos;
            while (pos < text.Length && char.IsAsciiDigit(text[pos]))
                pos++;
            if (pos > fracStart)
            {
                fractionNumerator = System.Numerics.BigInteger.Parse(text[fracStart..pos], CultureInfo.InvariantCulture);
                fractionDenominator = System.Numerics.BigInteger.Pow(10, pos - fracStart);
            }
        }

        ulong unit = defaultUnit;
        if (pos < text.Length)
        {
            unit = char.ToUpperInvariant(text[pos]) switch
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
            if (unit == 0 || pos != text.Length - 1)
                return false;
            hexWithSuffix = hex;
        }
        if (!fractionNumerator.IsZero && unit == 1)
            return false;

        var scaledFraction = fractionNumerator * unit;
        var total = integer * unit + scaledFraction / fractionDenominator;
        if (!fractionNumerator.IsZero && (scaledFraction % fractionDenominator) * 2 >= fractionDenominator)
            total += 1;
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
