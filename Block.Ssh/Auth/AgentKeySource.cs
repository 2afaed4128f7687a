using Renci.SshNet;
using Renci.SshNet.Security;

namespace Block.Ssh.Auth;

/// <summary>The agent's keys as one SSH.NET key source, offered in the agent's order.</summary>
internal sealed class AgentKeySource(IReadOnlyCollection<HostAlgorithm> algorithms) : IPrivateKeySource
{
    /// <inheritdoc />
    public IReadOnlyCollection<HostAlgorithm> HostKeyAlgorithms { get; } = algorithms;
}
