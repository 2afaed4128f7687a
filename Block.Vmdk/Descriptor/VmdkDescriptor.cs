using System.Globalization;
using System.Text;

namespace Block.Vmdk.Descriptor;

/// <summary>
/// A VMDK descriptor: the text that names the disk's create type, content ids, parent and extents, and carries the
/// disk database (<c>ddb.*</c>: adapter type, geometry, hardware and tools versions).
/// </summary>
/// <remarks>
/// <para>The text is kept as read, byte for byte (it is decoded as Latin-1, which maps every byte to one char and
/// back), so rewriting it — a new CID on the first write — changes only the CID line: comments, unknown keys, the
/// disk database and line endings survive.</para>
/// <para>Parsing follows what QEMU accepts: <c>key=value</c> lines with optional spaces and quotes, comments from
/// <c>#</c>, text ending at the first NUL byte; an extent line is used only if it starts with <c>RW</c> and has at least
/// an access, a size, a type and a quoted file name, and lines with a size of 0 are skipped.</para>
/// </remarks>
public sealed class VmdkDescriptor
{
    /// <summary>The most descriptor bytes read: larger descriptor files are read up to this size, as QEMU does.</summary>
    public const int MaxTextBytes = 1 << 20;

    /// <summary>The longest extent file name accepted, in bytes.</summary>
    public const int MaxFileNameBytes = 4096;

    /// <summary>The CID value meaning "no parent".</summary>
    public const uint NoParentCid = 0xffffffff;

    private readonly Dictionary<string, string> _values;

    private VmdkDescriptor(string text, Dictionary<string, string> values, IReadOnlyList<VmdkExtentLine> extents)
    {
        Text = text;
        _values = values;
        Extents = extents;
        CreateType = values.GetValueOrDefault("createType") ?? string.Empty;
        Cid = ParseHex(values.GetValueOrDefault("CID"));
        ParentCid = values.TryGetValue("parentCID", out var p) ? ParseHex(p) : NoParentCid;
        ParentFileNameHint = values.TryGetValue("parentFileNameHint", out var hint) && hint.Length > 0 ? FromLatin1(hint) : null;
        Version = values.TryGetValue("version", out var v) && int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n) ? n : 1;
    }

    /// <summary>The descriptor text (Latin-1 decoded bytes, without the NUL padding).</summary>
    public string Text { get; }

    /// <summary>The <c>version</c> value (1 when absent).</summary>
    public int Version { get; }

    /// <summary>The content id.</summary>
    public uint Cid { get; }

    /// <summary>The parent's content id when this disk was made (<see cref="NoParentCid"/> without a parent).</summary>
    public uint ParentCid { get; }

    /// <summary>The <c>createType</c> value (empty when absent).</summary>
    public string CreateType { get; }

    /// <summary>The parent (backing) image's file name, or null.</summary>
    public string? ParentFileNameHint { get; }

    /// <summary>The usable (<c>RW</c>, non-empty) extent lines, in order.</summary>
    public IReadOnlyList<VmdkExtentLine> Extents { get; }

    /// <summary>Every <c>key=value</c> pair, values without quotes (the disk database's <c>ddb.*</c> keys too).</summary>
    public IReadOnlyDictionary<string, string> Values => _values;

    /// <summary>True if the text has a <c>createType</c> line.</summary>
    public bool HasCreateType => _values.ContainsKey("createType");

    /// <summary>The value of <paramref name="key"/> (for example <c>ddb.adapterType</c>), or null.</summary>
    public string? this[string key] => _values.GetValueOrDefault(key);

    /// <summary>
    /// Parses descriptor bytes: the text ends at the first NUL or after <see cref="MaxTextBytes"/> bytes.
    /// </summary>
    /// <exception cref="ImageFormatException">An extent line names an unknown type or lacks a field its type needs.</exception>
    public static VmdkDescriptor Parse(ReadOnlySpan<byte> bytes)
    {
        if (bytes.Length > MaxTextBytes)
            bytes = bytes[..MaxTextBytes];
        int nul = bytes.IndexOf((byte)0);
        if (nul >= 0)
            bytes = bytes[..nul];
        return Parse(Encoding.Latin1.GetString(bytes));
    }

    /// <summary>Parses descriptor text (one char per byte, as <see cref="Text"/> holds it).</summary>
    /// <exception cref="ImageFormatException">An extent line names an unknown type or lacks a field its type needs.</exception>
    public static VmdkDescriptor Parse(string text)
    {
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        var extents = new List<VmdkExtentLine>();
        foreach (var rawLine in text.Split('\n'))
        {
            string line = rawLine.TrimEnd('\r');
            string trimmed = line.TrimStart(' ', '\t');
            if (trimmed.Length == 0 || trimmed[0] == '#')
                continue;
            if (TryParseExtentLine(trimmed, out var extent))
            {
                if (extent != null)
                    extents.Add(extent);
                continue;
            }
            int eq = trimmed.IndexOf('=');
            if (eq <= 0)
                continue;
            string key = trimmed[..eq].Trim(' ', '\t');
            string value = Unquote(trimmed[(eq + 1)..].Trim(' ', '\t'));
            if (key.Length > 0)
                values.TryAdd(key, value);
        }
        return new VmdkDescriptor(text, values, extents);
    }

    /// <summary>
    /// The text with the CID line set to <paramref name="cid"/> (written as QEMU writes it, lower-case hex without
    /// padding); everything else stays as it was.
    /// </summary>
    public string WithCid(uint cid)
    {
        string value = cid.ToString("x", CultureInfo.InvariantCulture);
        var sb = new StringBuilder(Text.Length + 8);
        bool replaced = false;
        int pos = 0;
        while (pos <= Text.Length)
        {
            int end = Text.IndexOf('\n', pos);
            int lineEnd = end < 0 ? Text.Length : end;
            string line = Text[pos..lineEnd];
            if (!replaced && IsKeyLine(line, "CID", out int valueStart))
            {
                string tail = line.EndsWith('\r') ? "\r" : string.Empty;
                sb.Append(line, 0, valueStart).Append(value).Append(tail);
                replaced = true;
            }
            else
            {
                sb.Append(line);
            }
            if (end < 0)
                break;
            sb.Append('\n');
            pos = end + 1;
        }
        if (!replaced)
        {
            // A descriptor without a CID line gets one after its first line, where QEMU's template has it.
            string text = sb.ToString();
            int firstEnd = text.IndexOf('\n');
            return firstEnd < 0 ? text + "\nCID=" + value + "\n" : text.Insert(firstEnd + 1, "CID=" + value + "\n");
        }
        return sb.ToString();
    }

    /// <summary>The text as bytes (Latin-1), the form it is written in.</summary>
    public static byte[] ToBytes(string text) => Encoding.Latin1.GetBytes(text);

    /// <summary>
    /// True if <paramref name="header"/> (the start of a file) is descriptor text as QEMU recognises it: after any
    /// comment lines, the first line is <c>version=1</c>, <c>version=2</c> or <c>version=3</c>.
    /// </summary>
    public static bool LooksLikeDescriptor(ReadOnlySpan<byte> header)
    {
        int pos = 0;
        while (pos < header.Length)
        {
            var rest = header[pos..];
            int nl = rest.IndexOf((byte)'\n');
            var line = nl < 0 ? rest : rest[..nl];
            if (line.Length > 0 && line[0] == (byte)'#')
            {
                if (nl < 0)
                    return false;
                pos += nl + 1;
                continue;
            }
            if (line.Length > 0 && line[^1] == (byte)'\r')
                line = line[..^1];
            return line.SequenceEqual("version=1"u8) || line.SequenceEqual("version=2"u8) || line.SequenceEqual("version=3"u8);
        }
        return false;
    }

    /// <summary>Turns a Latin-1 decoded value (one char per byte) back into the UTF-8 text it encodes.</summary>
    public static string FromLatin1(string value) => Encoding.UTF8.GetString(Encoding.Latin1.GetBytes(value));

    /// <summary>Turns text into the one-char-per-byte form descriptors are kept in (UTF-8 bytes as Latin-1 chars).</summary>
    public static string ToLatin1(string value) => Encoding.Latin1.GetString(Encoding.UTF8.GetBytes(value));

    private static bool IsKeyLine(string line, string key, out int valueStart)
    {
        valueStart = 0;
        int i = 0;
        while (i < line.Length && line[i] is ' ' or '\t')
            i++;
        if (string.CompareOrdinal(line, i, key, 0, key.Length) != 0)
            return false;
        i += key.Length;
        while (i < line.Length && line[i] is ' ' or '\t')
            i++;
        if (i >= line.Length || line[i] != '=')
            return false;
        i++;
        while (i < line.Length && line[i] is ' ' or '\t')
            i++;
        valueStart = i;
        return true;
    }

    /// <summary>
    /// Parses an extent line. Returns false when the line is not one (not starting with an access word, or without
    /// the four fields QEMU's parser needs), true with a null extent for lines QEMU skips (not <c>RW</c>, or empty).
    /// </summary>
    private static bool TryParseExtentLine(string line, out VmdkExtentLine? extent)
    {
        extent = null;
        var tokens = new List<string>(5);
        int pos = 0;
        // access, sectors and type are whitespace separated; then a quoted name; then an optional offset.
        for (int t = 0; t < 3; t++)
        {
            SkipSpace(line, ref pos);
            int start = pos;
            while (pos < line.Length && line[pos] is not (' ' or '\t'))
                pos++;
            if (pos == start)
                break;
            tokens.Add(line[start..pos]);
        }
        if (tokens.Count == 0 || tokens[0] is not ("RW" or "RDONLY" or "NOACCESS"))
            return false;
        if (tokens.Count < 3 || !long.TryParse(tokens[1], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long sectors))
            return true;
        SkipSpace(line, ref pos);
        if (pos >= line.Length || line[pos] != '"')
            return true;
        int nameEnd = line.IndexOf('"', pos + 1);
        if (nameEnd < 0)
            return true;
        string name = line[(pos + 1)..nameEnd];
        pos = nameEnd + 1;
        SkipSpace(line, ref pos);
        int offsetStart = pos;
        while (pos < line.Length && (char.IsAsciiDigit(line[pos]) || (pos == offsetStart && line[pos] is '-' or '+')))
            pos++;
        bool hasOffset = long.TryParse(line.AsSpan(offsetStart, pos - offsetStart), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long offset);

        if (tokens[0] != "RW" || sectors <= 0)
            return true;
        string typeName = tokens[2];
        var type = typeName switch
        {
            "FLAT" => VmdkExtentType.Flat,
            "SPARSE" => VmdkExtentType.Sparse,
            "VMFS" => VmdkExtentType.Vmfs,
            "VMFSSPARSE" => VmdkExtentType.VmfsSparse,
            "SESPARSE" => VmdkExtentType.SeSparse,
            _ => throw InvalidLine(line),
        };
        if ((type == VmdkExtentType.Flat) != hasOffset || name.Length == 0 || name.Length > MaxFileNameBytes || (hasOffset && offset < 0))
            throw InvalidLine(line);
        extent = new VmdkExtentLine(sectors, type, typeName, FromLatin1(name), hasOffset ? offset : 0);
        return true;
    }

    private static ImageFormatException InvalidLine(string line) =>
        new($"Invalid extent line: {FromLatin1(line.Length > 1024 ? line[..1024] : line)}");

    private static void SkipSpace(string line, ref int pos)
    {
        while (pos < line.Length && line[pos] is ' ' or '\t')
            pos++;
    }

    private static string Unquote(string value)
    {
        if (value.Length > 0 && value[0] == '"')
        {
            int close = value.IndexOf('"', 1);
            return close < 0 ? value[1..] : value[1..close];
        }
        return value;
    }

    private static uint ParseHex(string? value)
    {
        if (value is null)
            return 0;
        var span = value.AsSpan().Trim();
        if (span.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
            span = span[2..];
        uint result = 0;
        foreach (char c in span)
        {
            int digit = char.IsAsciiDigit(c) ? c - '0' : c is >= 'a' and <= 'f' ? c - 'a' + 10 : c is >= 'A' and <= 'F' ? c - 'A' + 10 : -1;
            if (digit < 0)
                break;
            result = unchecked((result << 4) | (uint)digit);
        }
        return result;
    }
}
