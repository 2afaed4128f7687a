using System.Globalization;

namespace Block.Nfs.Options;

/// <summary>QEMU's <c>nfs://server/path[?uid=&amp;gid=&amp;tcp-syncnt=&amp;readahead=&amp;pagecache=&amp;debug=]</c> file names.</summary>
public static class NfsUrl
{
    private const string Scheme = "nfs://";

    /// <summary>Parses an <c>nfs://</c> URL into options, with QEMU 7.2's messages for what is wrong.</summary>
    /// <remarks>As in QEMU, every query parameter needs a value that is an unsigned number, and an unknown one is an error.</remarks>
    public static BlockdevOptionsNfs Parse(string filename)
    {
        ArgumentNullException.ThrowIfNull(filename);
        int colon = filename.IndexOf(':', StringComparison.Ordinal);
        if (colon <= 0)
            throw new BlockOptionsException("Invalid URI specified");
        if (!filename.StartsWith(Scheme, StringComparison.Ordinal))
            throw new BlockOptionsException("URI scheme must be 'nfs'");
        string rest = filename[Scheme.Length..];
        string? query = null;
        int q = rest.IndexOf('?', StringComparison.Ordinal);
        if (q >= 0)
        {
            query = rest[(q + 1)..];
            rest = rest[..q];
        }
        int slash = rest.IndexOf('/', StringComparison.Ordinal);
        string authority = slash < 0 ? rest : rest[..slash];
        string path = slash < 0 ? string.Empty : Uri.UnescapeDataString(rest[slash..]);
        int at = authority.LastIndexOf('@');
        if (at >= 0)
            authority = authority[(at + 1)..];
        string host = authority;
        if (host.StartsWith('['))
        {
            int close = host.IndexOf(']', StringComparison.Ordinal);
            if (close < 0)
                throw new BlockOptionsException("Invalid URI specified");
            host = host[1..close];
        }
        else if (host.LastIndexOf(':') is var portColon and >= 0)
        {
            host = host[..portColon];
        }
        if (host.Length == 0)
            throw new BlockOptionsException("missing hostname in URI");
        if (path.Length == 0)
            throw new BlockOptionsException("missing file path in URI");

        long? uid = null, gid = null, synCount = null, readahead = null, pageCache = null, debug = null;
        if (!string.IsNullOrEmpty(query))
        {
            foreach (var pair in query.Split('&', StringSplitOptions.RemoveEmptyEntries))
            {
                int eq = pair.IndexOf('=', StringComparison.Ordinal);
                string name = Uri.UnescapeDataString(eq < 0 ? pair : pair[..eq]);
                if (eq < 0)
                    throw new BlockOptionsException($"Value for NFS parameter expected: {name}");
                string text = Uri.UnescapeDataString(pair[(eq + 1)..]);
                long value = ParseUnsigned(text) ?? throw new BlockOptionsException($"Illegal value for NFS parameter: {name}");
                switch (name)
                {
                    case "uid": uid = value; break;
                    case "gid": gid = value; break;
                    case "tcp-syncnt": synCount = value; break;
                    case "readahead": readahead = value; break;
                    case "pagecache": pageCache = value; break;
                    case "debug": debug = value; break;
                    default: throw new BlockOptionsException($"Unknown NFS parameter name: {name}");
                }
            }
        }
        return new BlockdevOptionsNfs
        {
            Server = new NfsServer(host),
            Path = path,
            User = uid,
            Group = gid,
            TcpSynCount = synCount,
            ReadaheadSize = readahead,
            PageCacheSize = pageCache,
            Debug = debug,
        };
    }

    /// <summary>QEMU's <c>parse_uint_full</c> with base 0: decimal, <c>0x</c> hex or leading-zero octal, nothing after.</summary>
    private static long? ParseUnsigned(string text)
    {
        if (text.Length == 0 || text[0] == '-')
            return null;
        ulong value;
        bool ok;
        if (text.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
            ok = ulong.TryParse(text.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value);
        else if (text.Length > 1 && text[0] == '0')
            ok = TryParseOctal(text.AsSpan(1), out value);
        else
            ok = ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value);
        return ok && value <= long.MaxValue ? (long)value : null;
    }

    private static bool TryParseOctal(ReadOnlySpan<char> text, out ulong value)
    {
        value = 0;
        foreach (char c in text)
        {
            if (c is < '0' or > '7' || value > ulong.MaxValue >> 3)
                return false;
            value = value << 3 | (uint)(c - '0');
        }
        return true;
    }

    /// <summary>
    /// The node's file name as QEMU 7.2 writes it: <c>nfs://host/path</c>, with <c>?uid=</c> and <c>gid=</c> when
    /// they were given and are not 0.
    /// </summary>
    public static string Format(BlockdevOptionsNfs options)
    {
        ArgumentNullException.ThrowIfNull(options);
        string name = $"{Scheme}{options.Server.Host}{options.Path}";
        long uid = options.User ?? 0, gid = options.Group ?? 0;
        if (uid != 0 && gid != 0)
            return FormattableString.Invariant($"{name}?uid={uid}&gid={gid}");
        if (uid != 0)
            return FormattableString.Invariant($"{name}?uid={uid}");
        if (gid != 0)
            return FormattableString.Invariant($"{name}?gid={gid}");
        return name;
    }
}
