using System.Text;

namespace Block.Drivers.Vvfat;

/// <summary>
/// Gives the entries of one directory their 8.3 short names, as QEMU 7.2's vvfat does (observed with
/// <c>qemu-img convert</c>): upper case, characters FAT refuses dropped, and a <c>~N</c> tail when the name lost
/// something or is already taken in the directory.
/// </summary>
/// <remarks>
/// <list type="number">
/// <item>Leading dots are dropped. The base is what comes before the first remaining dot, the extension what comes
/// after the last one.</item>
/// <item>Letters are upper-cased (not a loss). Characters outside <c>!</c>..<c>~</c> (spaces, non-ASCII) and
/// <c>"*+,./:;&lt;=&gt;?[\]|</c> are dropped.</item>
/// <item>The name is lossy if anything was dropped, if there was more than one dot (or a leading one), or if the base
/// is longer than 8 or the extension longer than 3 (both are then cut).</item>
/// <item>A lossy name takes the first free <c>BASE~N</c> for N = 1, 2, …, with the base cut to leave room for the
/// tail (<c>LONGF~10</c>); a name that is not lossy is taken as it is if free, else as a lossy one.</item>
/// </list>
/// </remarks>
internal sealed class FatShortNames
{
    private readonly HashSet<string> _taken = new(StringComparer.Ordinal);

    /// <summary>The short name (11 bytes: base space-padded to 8, extension to 3) for <paramref name="longName"/>.</summary>
    public byte[] Assign(string longName)
    {
        bool lossy = false;
        int start = 0;
        while (start < longName.Length && longName[start] == '.')
            start++;
        if (start > 0)
            lossy = true;
        string rest = longName[start..];
        int firstDot = rest.IndexOf('.');
        int lastDot = rest.LastIndexOf('.');
        if (firstDot != lastDot)
            lossy = true;
        string baseName = firstDot < 0 ? rest : rest[..firstDot];
        string extension = lastDot < 0 ? string.Empty : rest[(lastDot + 1)..];

        string b = Filter(baseName, ref lossy);
        string e = Filter(extension, ref lossy);
        if (b.Length > 8)
        {
            b = b[..8];
            lossy = true;
        }
        if (e.Length > 3)
        {
            e = e[..3];
            lossy = true;
        }

        string candidate = Pad(b, e);
        if (lossy || _taken.Contains(candidate))
        {
            for (int n = 1; ; n++)
            {
                string tail = "~" + n.ToString(System.Globalization.CultureInfo.InvariantCulture);
                string cut = b.Length + tail.Length > 8 ? b[..(8 - tail.Length)] : b;
                candidate = Pad(cut + tail, e);
                if (!_taken.Contains(candidate))
                    break;
            }
        }
        _taken.Add(candidate);
        return Encoding.ASCII.GetBytes(candidate);
    }

    private static string Pad(string b, string e) => b.PadRight(8) + e.PadRight(3);

    private static string Filter(string part, ref bool lossy)
    {
        var sb = new StringBuilder(part.Length);
        foreach (char c in part)
        {
            if (c is > ' ' and <= '~' && "\"*+,./:;<=>?[\\]|".IndexOf(c) < 0)
                sb.Append(char.ToUpperInvariant(c));
            else
                lossy = true;
        }
        return sb.ToString();
    }
}
