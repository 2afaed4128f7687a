using System.Globalization;
using Block.Ssh.Options;

namespace Block.Ssh.HostKeys;

/// <summary>Applies a <see cref="SshHostKeyCheck"/> to a server's host key, with QEMU 7.2's messages for a refusal.</summary>
internal static class HostKeyVerifier
{
    /// <summary>Returns null when the key passes, or the reason it is refused.</summary>
    public static string? Verify(SshHostKeyCheck check, SshHostKey key, SshServerAddress server, IEnumerable<string> knownHostsFiles)
    {
        switch (check.Mode)
        {
            case SshHostKeyCheckMode.None:
                return null;
            case SshHostKeyCheckMode.Hash:
                byte[] hash = key.Hash(check.Type);
                string given = check.Hash ?? string.Empty;
                if (FingerprintMatches(hash, given))
                    return null;
                string type = SshHostKeyCheck.TypeName(check.Type);
                return $"remote host {key.Type} key fingerprint '{type}:{Convert.ToHexStringLower(hash)}' does not match host_key_check '{type}:{given}'";
            default:
                return KnownHosts.Check(knownHostsFiles, server.Host, server.Port, key) switch
                {
                    KnownHosts.Result.Ok => null,
                    KnownHosts.Result.Changed =>
                        $"host key ({key.Type} key with fingerprint {key.Sha256Fingerprint}) does not match the one in known_hosts; this may be a possible attack",
                    KnownHosts.Result.OtherType => "host key for this server not found, another type exists",
                    _ => "no host key was found in known_hosts",
                };
        }
    }

    /// <summary>QEMU's comparison: hex digit pairs, colons skipped anywhere, and nothing left over on either side.</summary>
    internal static bool FingerprintMatches(ReadOnlySpan<byte> hash, string given)
    {
        int i = 0;
        foreach (byte b in hash)
        {
            while (i < given.Length && given[i] == ':')
                i++;
            if (i + 2 > given.Length
                || !byte.TryParse(given.AsSpan(i, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out byte value)
                || value != b)
                return false;
            i += 2;
        }
        return i == given.Length;
    }
}
