using System.Security.Cryptography;
using System.Text;

namespace Block.Ssh.HostKeys;

/// <summary>
/// OpenSSH known_hosts files, read as libssh reads them for QEMU's <c>known_hosts</c> check: plain and hashed
/// (<c>|1|salt|hmac</c>) host names, comma lists, <c>*</c>/<c>?</c> wildcards and <c>!</c> negation, and
/// <c>[host]:port</c> for a port other than 22. <c>@cert-authority</c> lines are skipped, <c>@revoked</c> keys refused.
/// </summary>
internal static class KnownHosts
{
    /// <summary>What the files say about a host's key.</summary>
    public enum Result
    {
        /// <summary>An entry for the host holds this key.</summary>
        Ok,

        /// <summary>An entry for the host holds another key of the same type (or this key is revoked).</summary>
        Changed,

        /// <summary>The host has entries, but only of other key types.</summary>
        OtherType,

        /// <summary>No entry names the host.</summary>
        Unknown,
    }

    /// <summary>Checks <paramref name="key"/> of <paramref name="host"/>:<paramref name="port"/> against <paramref name="files"/> (missing files are skipped).</summary>
    public static Result Check(IEnumerable<string> files, string host, string port, SshHostKey key)
    {
        string name = port == "22" ? host : $"[{host}]:{port}";
        bool changed = false, other = false;
        foreach (var file in files)
        {
            string[] lines;
            try
            {
                lines = File.ReadAllLines(file);
            }
            catch (IOException)
            {
                continue;
            }
            catch (UnauthorizedAccessException)
            {
                continue;
            }
            foreach (var raw in lines)
            {
                var fields = raw.Trim().Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
                if (fields.Length == 0 || fields[0].StartsWith('#'))
                    continue;
                bool revoked = false;
                if (fields[0].StartsWith('@'))
                {
                    if (fields[0] != "@revoked")
                        continue;
                    revoked = true;
                    fields = fields[1..];
                }
                if (fields.Length < 3 || !Matches(fields[0], name))
                    continue;
                byte[] blob;
                try
                {
                    blob = Convert.FromBase64String(fields[2]);
                }
                catch (FormatException)
                {
                    continue;
                }
                bool same = blob.AsSpan().SequenceEqual(key.Blob);
                if (revoked)
                {
                    if (same)
                        return Result.Changed;
                    continue;
                }
                if (same)
                    return Result.Ok;
                if (fields[1] == key.Type)
                    changed = true;
                else
                    other = true;
            }
        }
        return changed ? Result.Changed : other ? Result.OtherType : Result.Unknown;
    }

    /// <summary>True when the host field (a hashed name or a comma list of patterns) names <paramref name="name"/>.</summary>
    private static bool Matches(string hosts, string name)
    {
        if (hosts.StartsWith("|1|", StringComparison.Ordinal))
            return HashedMatches(hosts, name);
        bool matched = false;
        foreach (var pattern in hosts.Split(','))
        {
            bool negated = pattern.StartsWith('!');
            if (WildcardMatch(negated ? pattern[1..] : pattern, name))
            {
                if (negated)
                    return false;
                matched = true;
            }
        }
        return matched;
    }

    private static bool HashedMatches(string hosts, string name)
    {
        var parts = hosts.Split('|');
        if (parts.Length != 4)
            return false;
        try
        {
            byte[] salt = Convert.FromBase64String(parts[2]);
            byte[] expected = Convert.FromBase64String(parts[3]);
            return HMACSHA1.HashData(salt, Encoding.UTF8.GetBytes(name)).AsSpan().SequenceEqual(expected);
        }
        catch (FormatException)
        {
            return false;
        }
    }

    private static bool WildcardMatch(ReadOnlySpan<char> pattern, ReadOnlySpan<char> text)
    {
        while (pattern.Length > 0)
        {
            if (pattern[0] == '*')
            {
                pattern = pattern[1..];
                for (int i = 0; i <= text.Length; i++)
                {
                    if (WildcardMatch(pattern, text[i..]))
                        return true;
                }
                return false;
            }
            if (text.Length == 0 || (pattern[0] != '?' && char.ToLowerInvariant(pattern[0]) != char.ToLowerInvariant(text[0])))
                return false;
            pattern = pattern[1..];
            text = text[1..];
        }
        return text.Length == 0;
    }
}
