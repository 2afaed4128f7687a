using Block.Options;

namespace Block.Ssh.Options;

/// <summary>
/// QAPI <c>BlockdevOptionsSsh</c> as QEMU 7.2 has it: the server, the remote path, the user and the host key check;
/// plus <see cref="IdentityFile"/>, a private key file offered after the agent's keys.
/// </summary>
public sealed record BlockdevOptionsSsh : BlockdevOptions
{
    /// <summary>Creates options for the <c>ssh</c> driver.</summary>
    [System.Diagnostics.CodeAnalysis.SetsRequiredMembers]
    public BlockdevOptionsSsh()
    {
        Driver = "ssh";
        Server = new SshServerAddress("localhost");
        Path = string.Empty;
    }

    /// <summary>The server's address.</summary>
    public required SshServerAddress Server { get; init; }

    /// <summary>The image's path on the server.</summary>
    public required string Path { get; init; }

    /// <summary>The user to log in as; null means the local user, as in QEMU.</summary>
    public string? User { get; init; }

    /// <summary>How the host key is checked; null means <c>known_hosts</c>, QEMU's default.</summary>
    public SshHostKeyCheck? HostKeyCheck { get; init; }

    /// <summary>
    /// The legacy <c>host_key_check</c> text when the check came from an <c>ssh://</c> URI or the flat option; QEMU
    /// repeats it in the node's file name.
    /// </summary>
    public string? LegacyHostKeyCheck { get; init; }

    /// <summary>
    /// An OpenSSH or PEM private key file (unencrypted) to authenticate with after the agent's keys: option
    /// <c>identity-file</c>, URI parameter <c>identity_file</c>.
    /// </summary>
    /// <remarks>
    /// QEMU has no such option (libssh's automatic key search reads <c>~/.ssh/id_*</c>); the name is OpenSSH's
    /// <c>IdentityFile</c> (<c>ssh -i</c>) in QAPI's kebab case, so that an agent-less service can name its key.
    /// </remarks>
    public string? IdentityFile { get; init; }
}
