namespace Block.Ssh;

/// <summary>
/// Where the <c>ssh</c> driver finds the user's ssh-agent and known_hosts files, and how many SFTP file handles one
/// node keeps in flight. The defaults are the process's environment, as QEMU's; an embedder or a test names its own.
/// </summary>
public sealed class SshDriverOptions
{
    /// <summary>The ssh-agent socket; null reads <c>SSH_AUTH_SOCK</c> at each open.</summary>
    public string? AgentSocket { get; init; }

    /// <summary>The known_hosts files; null means <c>$HOME/.ssh/known_hosts</c> and <c>/etc/ssh/ssh_known_hosts</c>.</summary>
    public IReadOnlyList<string>? KnownHostsFiles { get; init; }

    /// <summary>
    /// How many SFTP handles on the image one node opens at most, each serving one request at a time: the number of
    /// requests in flight on the one SSH connection.
    /// </summary>
    /// <remarks>
    /// SSH.NET's file stream serves one request at a time, so parallel requests need parallel handles; they all share
    /// one SFTP channel, where their packets interleave.
    /// </remarks>
    public int MaxHandles { get; init; } = 32;

    internal string? ResolveAgentSocket() => AgentSocket ?? Environment.GetEnvironmentVariable("SSH_AUTH_SOCK");

    internal IReadOnlyList<string> ResolveKnownHostsFiles() => KnownHostsFiles ??
    [
        Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".ssh", "known_hosts"),
        "/etc/ssh/ssh_known_hosts",
    ];
}
