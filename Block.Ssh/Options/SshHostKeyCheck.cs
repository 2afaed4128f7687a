namespace Block.Ssh.Options;

/// <summary>QAPI <c>SshHostKeyCheckMode</c>: how the server's host key is checked.</summary>
public enum SshHostKeyCheckMode
{
    /// <summary><c>none</c>: any host key is accepted.</summary>
    None,

    /// <summary><c>hash</c>: the key's hash must equal a given fingerprint.</summary>
    Hash,

    /// <summary><c>known_hosts</c>: the key must be the one the user's known_hosts names for the host (the default).</summary>
    KnownHosts,
}

/// <summary>QAPI <c>SshHostKeyCheckHashType</c>: the hash of a <c>hash</c> check (<c>sha256</c> since QEMU 5.1).</summary>
public enum SshHostKeyHashType
{
    /// <summary><c>md5</c>.</summary>
    Md5,

    /// <summary><c>sha1</c>.</summary>
    Sha1,

    /// <summary><c>sha256</c>.</summary>
    Sha256,
}

/// <summary>
/// QAPI <c>SshHostKeyCheck</c> (QEMU 7.2's <c>host-key-check</c>): a mode, and for <c>hash</c> the hash type and the
/// expected fingerprint in hex (colons between bytes are ignored, as QEMU ignores them).
/// </summary>
/// <param name="Mode">The check.</param>
/// <param name="Type">The hash type, for <see cref="SshHostKeyCheckMode.Hash"/>.</param>
/// <param name="Hash">The expected fingerprint in hex, for <see cref="SshHostKeyCheckMode.Hash"/>.</param>
public sealed record SshHostKeyCheck(SshHostKeyCheckMode Mode, SshHostKeyHashType Type = SshHostKeyHashType.Sha256, string? Hash = null)
{
    /// <summary>No check.</summary>
    public static SshHostKeyCheck None { get; } = new(SshHostKeyCheckMode.None);

    /// <summary>The known_hosts check, QEMU's default.</summary>
    public static SshHostKeyCheck KnownHosts { get; } = new(SshHostKeyCheckMode.KnownHosts);

    /// <summary>
    /// Parses the legacy <c>host_key_check</c> string of the <c>ssh://</c> URI and the flat option: <c>no</c>,
    /// <c>yes</c>, or <c>md5:</c>/<c>sha1:</c>/<c>sha256:</c> followed by the fingerprint.
    /// </summary>
    public static SshHostKeyCheck ParseLegacy(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (value == "no")
            return None;
        if (value == "yes")
            return KnownHosts;
        if (value.StartsWith("md5:", StringComparison.Ordinal))
            return new(SshHostKeyCheckMode.Hash, SshHostKeyHashType.Md5, value[4..]);
        if (value.StartsWith("sha1:", StringComparison.Ordinal))
            return new(SshHostKeyCheckMode.Hash, SshHostKeyHashType.Sha1, value[5..]);
        if (value.StartsWith("sha256:", StringComparison.Ordinal))
            return new(SshHostKeyCheckMode.Hash, SshHostKeyHashType.Sha256, value[7..]);
        throw new BlockOptionsException($"unknown host_key_check setting ({value})");
    }

    /// <summary>The hash type's QAPI name (<c>md5</c>, <c>sha1</c>, <c>sha256</c>).</summary>
    public static string TypeName(SshHostKeyHashType type) => type switch
    {
        SshHostKeyHashType.Md5 => "md5",
        SshHostKeyHashType.Sha1 => "sha1",
        _ => "sha256",
    };
}
