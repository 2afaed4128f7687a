using Renci.SshNet.Security;

namespace Block.Ssh.Auth;

/// <summary>
/// One of the agent's keys as SSH.NET's public-key authentication sees it: the public blob, and signatures that the
/// agent makes. An RSA key appears twice, as <c>rsa-sha2-512</c> and <c>rsa-sha2-256</c>, since OpenSSH refuses SHA-1.
/// </summary>
internal sealed class AgentKeyAlgorithm : HostAlgorithm
{
    private const uint RsaSha256 = 2;
    private const uint RsaSha512 = 4;

    private readonly SshAgent _agent;
    private readonly byte[] _blob;
    private readonly uint _flags;

    private AgentKeyAlgorithm(string name, SshAgent agent, byte[] blob, uint flags)
        : base(name)
    {
        _agent = agent;
        _blob = blob;
        _flags = flags;
    }

    /// <summary>The algorithms under which the key <paramref name="blob"/> can sign.</summary>
    public static IEnumerable<HostAlgorithm> For(SshAgent agent, byte[] blob)
    {
        string type = SshAgent.WireReader.TypeOf(blob);
        if (type == "ssh-rsa")
        {
            yield return new AgentKeyAlgorithm("rsa-sha2-512", agent, blob, RsaSha512);
            yield return new AgentKeyAlgorithm("rsa-sha2-256", agent, blob, RsaSha256);
        }
        else
        {
            yield return new AgentKeyAlgorithm(type, agent, blob, 0);
        }
    }

    /// <inheritdoc />
    public override byte[] Data => _blob;

    /// <inheritdoc />
    /// <remarks>The agent answers with the signature blob (<c>string algorithm, string signature</c>) SSH.NET sends as is.</remarks>
    public override byte[] Sign(byte[] data) => _agent.Sign(_blob, data, _flags);

    /// <inheritdoc />
    /// <remarks>A client key only signs; verifying is the server's part.</remarks>
    public override bool VerifySignature(byte[] data, byte[] signature) =>
        throw new NotSupportedException("An ssh-agent key is used for signing only.");
}
