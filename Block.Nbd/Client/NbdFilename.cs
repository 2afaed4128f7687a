using System.Globalization;
using System.Text;

namespace Block.Nbd.Client;

/// <summary>
/// QEMU's NBD file names, both ways: <c>nbd:unix:PATH[:exportname=X]</c>, <c>nbd:HOST:PORT[:exportname=X]</c>,
/// <c>nbd[+tcp]://HOST[:PORT]/X</c> and <c>nbd+unix:///X?socket=PATH</c> in; the name QEMU shows for a node
/// (<c>nbd+unix:///X?socket=PATH</c>, <c>nbd://HOST:PORT/X</c>) out. Errors are QEMU 7.2's texts.
/// </summary>
public static class NbdFilename
{
    private const string ExportNameOption = ":exportname=";

    /// <summary>QEMU's message when no usable address was given.</summary>
    public const string AddressMissing = "NBD server address missing";

    /// <summary>QEMU's message for any malformed NBD URI.</summary>
    public const string InvalidUri = "No valid URL specified";

    /// <summary>Parses <paramref name="filename"/> into a server address and an export name (null for the default).</summary>
    /// <exception cref="BlockOptionsException">A malformed name, with QEMU's message.</exception>
    public static (NbdServerAddress Server, string? Export) Parse(string filename)
    {
        ArgumentNullException.ThrowIfNull(filename);
        int colon = filename.IndexOf(':');
        if (colon > 0 && string.CompareOrdinal(filename, colon, "://", 0, 3) == 0)
            return ParseUri(filename[..colon], filename[(colon + 3)..]);
        if (!filename.StartsWith("nbd:", StringComparison.Ordinal))
            throw new BlockOptionsException(InvalidUri);
        return ParseLegacy(filename[4..]);
    }

    private static (NbdServerAddress, string?) ParseLegacy(string rest)
    {
        string? export = null;
        int at = rest.IndexOf(ExportNameOption, StringComparison.Ordinal);
        if (at >= 0)
        {
            export = rest[(at + ExportNameOption.Length)..];
            // QEMU gives up on the whole name when the export is empty, and then finds no address.
            if (export.Length == 0)
                throw new BlockOptionsException(AddressMissing);
            rest = rest[..at];
        }
        if (rest.Length == 0)
            throw new BlockOptionsException(AddressMissing);
        if (rest.StartsWith("unix:", StringComparison.Ordinal))
            return (NbdServerAddress.Unix(rest[5..]), export);
        return (ParseInet(rest), export);
    }

    /// <summary>QEMU's <c>host:port</c> form (<c>[v6]:port</c> for IPv6): the host ends at the first colon.</summary>
    private static NbdServerAddress ParseInet(string text)
    {
        if (text.StartsWith('['))
        {
            int close = text.IndexOf(']', StringComparison.Ordinal);
            if (close < 0 || close + 1 >= text.Length || text[close + 1] != ':')
                throw new BlockOptionsException($"error parsing IPv6 address '{text}'");
            return new NbdServerAddress(null, text[1..close], text[(close + 2)..]);
        }
        int colon = text.IndexOf(':', StringComparison.Ordinal);
        if (colon < 0)
            throw new BlockOptionsException($"error parsing address '{text}'");
        return new NbdServerAddress(null, text[..colon], text[(colon + 1)..]);
    }

    private static (NbdServerAddress, string?) ParseUri(string scheme, string rest)
    {
        bool unix = scheme switch
        {
            "nbd" or "nbd+tcp" => false,
            "nbd+unix" => true,
            _ => throw new BlockOptionsException(InvalidUri),
        };
        if (rest.Contains('#', StringComparison.Ordinal))
            throw new BlockOptionsException(InvalidUri);
        string? query = null;
        int q = rest.IndexOf('?', StringComparison.Ordinal);
        if (q >= 0)
        {
            query = rest[(q + 1)..];
            rest = rest[..q];
        }
        int slash = rest.IndexOf('/', StringComparison.Ordinal);
        string authority = slash < 0 ? rest : rest[..slash];
        string path = slash < 0 ? string.Empty : Unescape(rest[slash..]);
        string? export = path.StartsWith('/') ? path[1..] : path;
        if (export.Length == 0)
            export = null;

        var (host, port) = ParseAuthority(authority);
        if (unix)
        {
            if (host.Length != 0 || port != null || query is null)
                throw new BlockOptionsException(InvalidUri);
            var parameters = query.Split('&', ';');
            if (parameters.Length != 1 || !parameters[0].StartsWith("socket=", StringComparison.Ordinal))
                throw new BlockOptionsException(InvalidUri);
            return (NbdServerAddress.Unix(Unescape(parameters[0][7..])), export);
        }
        if (query != null || host.Length == 0)
            throw new BlockOptionsException(InvalidUri);
        return (NbdServerAddress.Inet(host, port), export);
    }

    private static (string Host, string? Port) ParseAuthority(string authority)
    {
        int at = authority.LastIndexOf('@');
        if (at >= 0)
            authority = authority[(at + 1)..];
        string host;
        string? portText = null;
        if (authority.StartsWith('['))
        {
            int close = authority.IndexOf(']', StringComparison.Ordinal);
            if (close < 0)
                throw new BlockOptionsException(InvalidUri);
            host = authority[1..close];
            string after = authority[(close + 1)..];
            if (after.Length > 0)
            {
                if (after[0] != ':')
                    throw new BlockOptionsException(InvalidUri);
                portText = after[1..];
            }
        }
        else
        {
            int colon = authority.IndexOf(':', StringComparison.Ordinal);
            host = colon < 0 ? authority : authority[..colon];
            if (colon >= 0)
                portText = authority[(colon + 1)..];
        }
        if (portText is null || portText.Length == 0)
            return (Unescape(host), null);
        if (!portText.All(char.IsAsciiDigit) || !int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port > 65535)
            throw new BlockOptionsException(InvalidUri);
        return (Unescape(host), port.ToString(CultureInfo.InvariantCulture));
    }

    private static string Unescape(string text)
    {
        if (!text.Contains('%', StringComparison.Ordinal))
            return text;
        var bytes = new List<byte>(text.Length);
        for (int i = 0; i < text.Length; i++)
        {
            if (text[i] == '%' && i + 2 < text.Length &&
                byte.TryParse(text.AsSpan(i + 1, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out byte b))
            {
                bytes.Add(b);
                i += 2;
            }
            else
            {
                bytes.AddRange(Encoding.UTF8.GetBytes(text.Substring(i, 1)));
            }
        }
        return Encoding.UTF8.GetString(bytes.ToArray());
    }

    /// <summary>
    /// The name QEMU gives a node (its <c>exact_filename</c>): <c>nbd+unix:///EXPORT?socket=PATH</c> or
    /// <c>nbd://HOST:PORT/EXPORT</c>, without <c>/EXPORT</c> when none was asked for.
    /// </summary>
    public static string Format(NbdServerAddress server, string? export)
    {
        ArgumentNullException.ThrowIfNull(server);
        if (server.IsUnix)
            return export is null ? $"nbd+unix://?socket={server.Path}" : $"nbd+unix:///{export}?socket={server.Path}";
        return export is null ? $"nbd://{server.Host}:{server.Port}" : $"nbd://{server.Host}:{server.Port}/{export}";
    }
}
