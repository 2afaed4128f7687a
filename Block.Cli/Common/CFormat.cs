using System.Globalization;
using System.Numerics;

namespace Block.Cli.Common;

/// <summary>
/// C's <c>printf</c> floating-point conversions, exactly: the value's binary expansion rounded half to even, as
/// glibc does. .NET's own formatting rounds ties away from zero, which would print <c>1.13 MiB</c> where qemu-img
/// prints <c>1.12 MiB</c>.
/// </summary>
internal static class CFormat
{
    /// <summary><c>%.{decimals}f</c> of <paramref name="value"/>.</summary>
    public static string Fixed(double value, int decimals)
    {
        if (double.IsNaN(value) || double.IsInfinity(value))
            return value.ToString(CultureInfo.InvariantCulture);
        var (num, den) = Exact(Math.Abs(value));
        var scaled = RoundHalfEven(num * BigInteger.Pow(10, decimals), den);
        string digits = scaled.ToString(CultureInfo.InvariantCulture).PadLeft(decimals + 1, '0');
        string result = decimals == 0 ? digits : digits[..^decimals] + "." + digits[^decimals..];
        return value < 0 && scaled != 0 ? "-" + result : result;
    }

    /// <summary><c>%.{precision}g</c> of the rational <paramref name="num"/>/<paramref name="den"/> (positive).</summary>
    public static string G(BigInteger num, BigInteger den, int precision = 3)
    {
        if (num.IsZero)
            return "0";
        int exponent = (int)Math.Floor(BigInteger.Log10(num) - BigInteger.Log10(den));
        // Correct the estimate so that 10^exponent <= value < 10^(exponent+1).
        while (Compare(num, den, exponent) < 0)
            exponent--;
        while (Compare(num, den, exponent + 1) >= 0)
            exponent++;
        var scaled = ScaleToDigits(num, den, precision - 1 - exponent);
        if (scaled >= BigInteger.Pow(10, precision))
        {
            exponent++;
            scaled = ScaleToDigits(num, den, precision - 1 - exponent);
        }
        string digits = scaled.ToString(CultureInfo.InvariantCulture);
        if (exponent < -4 || exponent >= precision)
        {
            string mantissa = digits.Length > 1 ? digits[0] + "." + digits[1..] : digits;
            mantissa = TrimZeros(mantissa);
            return mantissa + "e" + (exponent < 0 ? "-" : "+") + Math.Abs(exponent).ToString("00", CultureInfo.InvariantCulture);
        }
        int decimals = precision - 1 - exponent;
        string text = decimals <= 0 ? digits : digits.PadLeft(decimals + 1, '0') is var p ? p[..^decimals] + "." + p[^decimals..] : digits;
        return TrimZeros(text);
    }

    private static BigInteger ScaleToDigits(BigInteger num, BigInteger den, int power) => power >= 0
        ? RoundHalfEven(num * BigInteger.Pow(10, power), den)
        : RoundHalfEven(num, den * BigInteger.Pow(10, -power));

    private static int Compare(BigInteger num, BigInteger den, int exponent) => exponent >= 0
        ? num.CompareTo(den * BigInteger.Pow(10, exponent))
        : (num * BigInteger.Pow(10, -exponent)).CompareTo(den);

    private static string TrimZeros(string s)
    {
        if (!s.Contains('.'))
            return s;
        s = s.TrimEnd('0');
        return s.EndsWith('.') ? s[..^1] : s;
    }

    private static BigInteger RoundHalfEven(BigInteger num, BigInteger den)
    {
        var q = BigInteger.DivRem(num, den, out var r);
        int c = (r * 2).CompareTo(den);
        if (c > 0 || (c == 0 && !q.IsEven))
            q += 1;
        return q;
    }

    /// <summary>The exact rational value of a finite non-negative double.</summary>
    private static (BigInteger Num, BigInteger Den) Exact(double value)
    {
        long bits = BitConverter.DoubleToInt64Bits(value);
        int exp = (int)((bits >> 52) & 0x7ff);
        long mantissa = bits & 0xfffffffffffffL;
        if (exp == 0)
            exp = 1;
        else
            mantissa |= 1L << 52;
        exp -= 1075;
        return exp >= 0 ? (new BigInteger(mantissa) << exp, BigInteger.One) : (new BigInteger(mantissa), BigInteger.One << -exp);
    }
}
