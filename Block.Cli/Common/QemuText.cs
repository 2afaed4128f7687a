using System.Globalization;
using System.Numerics;

namespace Block.Cli.Common;

/// <summary>How qemu-img and qemu-io render sizes, times and rates.</summary>
internal static class QemuText
{
    private static readonly string[] s_units = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"];

    /// <summary>
    /// qemu-img's human size (<c>virtual size: 1.5 MiB</c>): the next unit from 1000 of the current one on, then
    /// three significant digits (<c>0.977 MiB</c>, <c>1e+03 KiB</c>).
    /// </summary>
    public static string HumanSize(ulong value)
    {
        if (value == 0)
            return "0 B";
        // The unit index is the one where value * 1.024 first stays below 1024^(i+1).
        int unit = 0;
        while (unit < s_units.Length - 1 && new BigInteger(value) * 1024 >= BigInteger.Pow(1024, unit + 1) * 1000)
            unit++;
        var den = BigInteger.One << (10 * unit);
        return CFormat.G(value, den, 3) + " " + s_units[unit] + "B";
    }

    /// <summary>
    /// qemu-io's <c>cvtstr</c>: <c>%.3f</c> in the largest binary unit the value reaches (<c>1.500 KiB</c>), with
    /// a <c>.000</c> cut off; below 1 KiB <c>%f bytes</c> (<c>568.239330 bytes</c>, <c>1 bytes</c>).
    /// </summary>
    public static string CvtStr(double value)
    {
        string text;
        string unit;
        const double KiB = 1024.0;
        if (value >= KiB * KiB * KiB * KiB * KiB * KiB)
            (text, unit) = (CFormat.Fixed(value / (KiB * KiB * KiB * KiB * KiB * KiB), 3), " EiB");
        else if (value >= KiB * KiB * KiB * KiB * KiB)
            (text, unit) = (CFormat.Fixed(value / (KiB * KiB * KiB * KiB * KiB), 3), " PiB");
        else if (value >= KiB * KiB * KiB * KiB)
            (text, unit) = (CFormat.Fixed(value / (KiB * KiB * KiB * KiB), 3), " TiB");
        else if (value >= KiB * KiB * KiB)
            (text, unit) = (CFormat.Fixed(value / (KiB * KiB * KiB), 3), " GiB");
        else if (value >= KiB * KiB)
            (text, unit) = (CFormat.Fixed(value / (KiB * KiB), 3), " MiB");
        else if (value >= KiB)
            (text, unit) = (CFormat.Fixed(value / KiB, 3), " KiB");
        else
            (text, unit) = (CFormat.Fixed(value, 6), " bytes");
        int cut = text.IndexOf(".000", StringComparison.Ordinal);
        if (cut >= 0)
            text = text[..cut];
        return text + unit;
    }

    /// <summary>qemu-io's elapsed time: <c>00.15 sec</c> below a second, else <c>0:01:04.01</c>.</summary>
    public static string TimeStr(TimeSpan elapsed, bool machine)
    {
        double total = elapsed.TotalSeconds;
        long whole = (long)Math.Floor(total);
        double fraction = total - whole;
        if (!machine && whole == 0)
            return CFormat.Fixed(fraction, 2).PadLeft(5, '0') + " sec";
        long hours = whole / 3600;
        long minutes = whole / 60 % 60;
        double seconds = whole % 60 + fraction;
        return hours.ToString(CultureInfo.InvariantCulture) + ":" + minutes.ToString("00", CultureInfo.InvariantCulture) + ":"
            + CFormat.Fixed(seconds, 2).PadLeft(5, '0');
    }

    /// <summary><c>%#x</c>: <c>0x…</c> in lower case, but a bare <c>0</c> for zero (a C quirk qemu-img map shows).</summary>
    public static string AltHex(long value) => value == 0 ? "0" : "0x" + value.ToString("x", CultureInfo.InvariantCulture);
}
