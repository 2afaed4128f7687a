using System.Globalization;
using System.Text;

namespace Block.Qmp.Wire;

/// <summary>Turns the raw bytes between a QMP string's quotes into its value, with QEMU 7.2's error texts.</summary>
internal static class QmpStringDecoder
{
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>The value, or (null, the parse error) when an escape or the UTF-8 is invalid.</summary>
    public static (string? Text, string? Error) Decode(List<byte> raw)
    {
        string text;
        try
        {
            text = StrictUtf8.GetString(System.Runtime.InteropServices.CollectionsMarshal.AsSpan(raw));
        }
        catch (DecoderFallbackException)
        {
            return (null, "invalid UTF-8 sequence in string");
        }
        int backslash = text.IndexOf('\\');
        if (backslash < 0)
            return (text, null);

        var sb = new StringBuilder(text.Length);
        sb.Append(text, 0, backslash);
        for (int i = backslash; i < text.Length; i++)
        {
            char c = text[i];
            if (c != '\\')
            {
                sb.Append(c);
                continue;
            }
            // The lexer never ends a string on a backslash, so an escaped character follows.
            char e = text[++i];
            switch (e)
            {
                case '"': sb.Append('"'); break;
                case '\'': sb.Append('\''); break;
                case '\\': sb.Append('\\'); break;
                case '/': sb.Append('/'); break;
                case 'b': sb.Append('\b'); break;
                case 'f': sb.Append('\f'); break;
                case 'n': sb.Append('\n'); break;
                case 'r': sb.Append('\r'); break;
                case 't': sb.Append('\t'); break;
                case 'u':
                    int start = i - 1;
                    if (!TryHex4(text, i + 1, out int cp))
                        return (null, InvalidCodePoint(text, start));
                    i += 4;
                    if (cp is >= 0xD800 and <= 0xDBFF)
                    {
                        // A high surrogate must be followed by an escaped low one.
                        if (i + 2 < text.Length && text[i + 1] == '\\' && text[i + 2] == 'u'
                            && TryHex4(text, i + 3, out int low) && low is >= 0xDC00 and <= 0xDFFF)
                        {
                            sb.Append((char)cp).Append((char)low);
                            i += 6;
                            break;
                        }
                        return (null, InvalidCodePoint(text, start));
                    }
                    if (cp is 0 or (>= 0xDC00 and <= 0xDFFF))
                        return (null, InvalidCodePoint(text, start));
                    sb.Append((char)cp);
                    break;
                default:
                    return (null, "invalid escape sequence in string");
            }
        }
        return (sb.ToString(), null);
    }

    private static bool TryHex4(string text, int at, out int value)
    {
        value = 0;
        return at + 4 <= text.Length
            && int.TryParse(text.AsSpan(at, 4), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value);
    }

    // QEMU quotes the escape as the six characters from its backslash (fewer at the string's end, the closing quote
    // then included): "\u00\" is not a valid Unicode character".
    private static string InvalidCodePoint(string text, int start)
    {
        string shown = text.Length - start >= 6 ? text.Substring(start, 6) : text[start..] + "\"";
        return $"{shown} is not a valid Unicode character";
    }
}
