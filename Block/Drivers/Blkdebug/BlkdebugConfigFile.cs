using System.Globalization;

namespace Block.Drivers.Blkdebug;

/// <summary>
/// Reads a blkdebug rules file in QEMU's format: <c>[inject-error]</c> and <c>[set-state]</c> sections of
/// <c>key = "value"</c> lines, <c>#</c> comments in the first column.
/// </summary>
/// <remarks>
/// The line syntax is QEMU's config-file syntax, strictness included (a key must be followed by white space, a section
/// header must start the line), so that a file QEMU refuses is refused here with QEMU's message, and one it takes
/// means the same rules.
/// </remarks>
internal static class BlkdebugConfigFile
{
    private const int MaxFileBytes = 1 << 20;

    /// <summary>The rules in <paramref name="path"/>, in file order.</summary>
    public static (List<BlkdebugInjectErrorOptions> InjectError, List<BlkdebugSetStateOptions> SetState) Read(string path)
    {
        string text;
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read);
            if (stream.Length > MaxFileBytes)
                throw new BlockOptionsException("Could not parse blkdebug config file");
            text = new StreamReader(stream).ReadToEnd();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            var errno = e is FileNotFoundException or DirectoryNotFoundException ? Errno.ENOENT
                : e is UnauthorizedAccessException ? Errno.EACCES : Errno.EIO;
            throw new BlockOptionsException("Could not read blkdebug config file: " + ErrnoText.Describe(errno));
        }
        return Parse(text);
    }

    /// <summary>The rules in a config file's text.</summary>
    public static (List<BlkdebugInjectErrorOptions> InjectError, List<BlkdebugSetStateOptions> SetState) Parse(string text)
    {
        var sections = new List<(string Group, Dictionary<string, string> Values)>();
        Dictionary<string, string>? current = null;
        int start = 0;
        while (start < text.Length)
        {
            int nl = text.IndexOf('\n', start);
            string line = nl < 0 ? text[start..] : text[start..(nl + 1)];
            start = nl < 0 ? text.Length : nl + 1;
            if (line[0] is '\n' or '#')
                continue;
            if (line[0] == '[')
            {
                string group = GroupName(line);
                if (group is not ("inject-error" or "set-state"))
                    throw new BlockOptionsException($"There is no option group '{group}'");
                current = new Dictionary<string, string>(StringComparer.Ordinal);
                sections.Add((group, current));
                continue;
            }
            var (key, value) = KeyValue(line);
            if (current is null)
                throw new BlockOptionsException("no group defined");
            if (!IsKnown(sections[^1].Group, key))
                throw new BlockOptionsException($"Invalid parameter '{key}'");
            current[key] = value;
        }

        var inject = new List<BlkdebugInjectErrorOptions>();
        var setState = new List<BlkdebugSetStateOptions>();
        foreach (var (group, values) in sections)
        {
            if (!values.TryGetValue("event", out string? ev))
                throw new BlockOptionsException("Missing event name for rule");
            if (!BlkdebugEventNames.TryParse(ev, out _))
                throw new BlockOptionsException("invalid parameter value: " + ev);
            if (group == "inject-error")
            {
                inject.Add(new BlkdebugInjectErrorOptions
                {
                    Event = ev,
                    State = Number(values, "state") ?? 0,
                    Errno = (int)(Number(values, "errno") ?? 5),
                    Sector = Number(values, "sector") ?? -1,
                    Once = Bool(values, "once") ?? false,
                    Immediately = Bool(values, "immediately") ?? false,
                    IoType = values.TryGetValue("iotype", out string? io) ? BlkdebugDriver.ParseIoType(io) : BlkdebugIoType.Default,
                });
            }
            else
            {
                setState.Add(new BlkdebugSetStateOptions
                {
                    Event = ev,
                    State = Number(values, "state") ?? 0,
                    NewState = Number(values, "new_state") ?? 0,
                });
            }
        }
        return (inject, setState);
    }

    private static bool IsKnown(string group, string key) => group == "inject-error"
        ? key is "event" or "state" or "errno" or "sector" or "once" or "immediately" or "iotype"
        : key is "event" or "state" or "new_state";

    private static string GroupName(string line)
    {
        // "[group "id"]" names the group by its first word; "[group]" by everything up to ']' (or the line's end).
        int ws = line.IndexOfAny([' ', '\t'], 1);
        if (ws > 1 && line.AsSpan(ws).TrimStart(" \t").StartsWith("\""))
            return line[1..ws];
        int close = line.IndexOf(']', 1);
        string group = close < 0 ? line[1..] : line[1..close];
        return group.Length > 63 ? group[..63] : group;
    }

    private static (string Key, string Value) KeyValue(string line)
    {
        int i = 0;
        while (i < line.Length && char.IsWhiteSpace(line[i]))
            i++;
        int keyStart = i;
        while (i < line.Length && !char.IsWhiteSpace(line[i]))
            i++;
        if (i == keyStart)
            throw new BlockOptionsException("parse error");
        string key = line[keyStart..i];
        while (i < line.Length && char.IsWhiteSpace(line[i]))
            i++;
        if (i >= line.Length || line[i] != '=')
            return (key, string.Empty);
        i++;
        while (i < line.Length && char.IsWhiteSpace(line[i]))
            i++;
        if (i >= line.Length || line[i] != '"')
            return (key, string.Empty);
        int close = line.IndexOf('"', i + 1);
        return (key, close < 0 ? line[(i + 1)..] : line[(i + 1)..close]);
    }

    private static long? Number(Dictionary<string, string> values, string key)
    {
        if (!values.TryGetValue(key, out string? text))
            return null;
        bool ok = text.StartsWith("0x", StringComparison.OrdinalIgnoreCase)
            ? long.TryParse(text.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out long v)
            : long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out v);
        return ok ? v : throw new BlockOptionsException($"Parameter '{key}' expects a number");
    }

    private static bool? Bool(Dictionary<string, string> values, string key)
    {
        if (!values.TryGetValue(key, out string? text))
            return null;
        return text switch
        {
            "on" or "yes" or "true" or "y" => true,
            "off" or "no" or "false" or "n" => false,
            _ => throw new BlockOptionsException($"Parameter '{key}' expects 'on' or 'off'"),
        };
    }
}
