using System.Globalization;

namespace Block.Ssh.Options;

/// <summary>QEMU's <c>ssh://[user@]host[:port]/path[?host_key_check=…]</c> file names, parsed and formatted.</summary>
public static class SshFilename
{
    /// <summary>Parses an <c>ssh://</c> URI into options, with QEMU 7.2's messages for what is missing.</summary>
    /// <remarks>Query parameters other than <c>host_key_check</c> (and our <c>identity_file</c>) are ignored, as QEMU ignores them.</remarks>
    public static BlockdevOptionsSsh Parse(string filename)
    {
        ArgumentNullException.ThrowIfNull(filename);
        const string scheme = "ssh://";
        if (!filename.StartsWith(scheme, StringComparison.Ordinal))
            throw new BlockOptionsException("URI scheme must be 'ssh'");
        string rest = filename[scheme.Length..];
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

        string? user = null;
        int at = authority.LastIndexOf('@');
        if (at >= 0)
        {
            user = Uri.UnescapeDataString(authority[..at]);
            authority = authority[(at + 1)..];
        }
        string host;
        string? port = null;
        if (authority.StartsWith('['))
        {
            int close = authority.IndexOf(']', StringComparison.Ordinal);
            if (close < 0)
                throw new BlockOptionsException("Invalid URI");
            host = authority[1..close];
            if (close + 1 < authority.Length && authority[close + 1] == ':')
                port = authority[(close + 2)..];
        }
        else
        {
            int colon = authority.LastIndexOf(':');
            host = colon < 0 ? authority : authority[..colon];
            if (colon >= 0)
                port = authority[(colon + 1)..];
        }
        if (host.Length == 0)
            throw new BlockOptionsException("missing hostname in URI");
        if (path.Length == 0)
            throw new BlockOptionsException("missing remote path in URI");
        if (string.IsNullOrEmpty(port))
            port = "22";
        else if (!int.TryParse(port, NumberStyles.None, CultureInfo.InvariantCulture, out _))
            throw new BlockOptionsException("Invalid URI");

        string? hostKeyCheck = null;
        string? identityFile = null;
        if (query != null)
        {
            foreach (var pair in query.Split('&', StringSplitOptions.RemoveEmptyEntries))
            {
                int eq = pair.IndexOf('=', StringComparison.Ordinal);
                string name = eq < 0 ? pair : pair[..eq];
                string value = eq < 0 ? string.Empty : Uri.UnescapeDataString(pair[(eq + 1)..]);
                if (name == "host_key_check")
                    hostKeyCheck = value;
                else if (name == "identity_file")
                    identityFile = value;
            }
        }
        return new BlockdevOptionsSsh
        {
            Server = new SshServerAddress(host, port),
            Path = path,
            User = user,
            HostKeyCheck = hostKeyCheck is null ? null : SshHostKeyCheck.ParseLegacy(hostKeyCheck),
            LegacyHostKeyCheck = hostKeyCheck,
            IdentityFile = identityFile,
        };
    }

    /// <summary>
    /// The node's file name as QEMU 7.2 writes it: <c>ssh://user@host:port/path</c>, with the legacy
    /// <c>?host_key_check=</c> text when one was given that way.
    /// </summary>
    public static string Format(BlockdevOptionsSsh options, string user)
    {
        ArgumentNullException.ThrowIfNull(options);
        string host = options.Server.Host.Contains(':', StringComparison.Ordinal) ? $"[{options.Server.Host}]" : options.Server.Host;
        string name = $"ssh://{user}@{host}:{options.Server.Port}{options.Path}";
        return options.LegacyHostKeyCheck is null ? name : $"{name}?host_key_check={options.LegacyHostKeyCheck}";
    }
}
