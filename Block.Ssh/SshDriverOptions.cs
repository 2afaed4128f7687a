namespace Block.Ssh;

/// <summary>
/// Where the <c>ssh</c> driver finds the user's ssh-agent and known_hosts files. The defaults are the process's environment, as QEMU's; an embedder or a test names its own.
/// </summary>
public sealed class SshDriverOptions
{
    /// <summary>The ssh-agent socket; null reads <c>SSH_AUTH_SOCK</c> at each open (libssh's own default).</summary>
    public string? AgentSocket { get; init; }

    /// <summary>The known_hosts files; null means <c>$HOME/.ssh/known_hosts</c> and <c>/etc/ssh/ssh_known_hosts</c>.</summary>
    public IReadOnlyList<string>? KnownHostsFiles { get; init; }

    internal string? ResolveAgentSocket() => AgentSocket ?? Environment.GetEnvironmentVariable("SSH_AUTH_SOCK");

    internal IReadOnlyList<string> ResolveKnownHostsFiles() => KnownHostsFiles ??
    [
        Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".ssh", "known_hosts"),
        "/etc/ssh/ssh_known_hosts",
    ];
}
