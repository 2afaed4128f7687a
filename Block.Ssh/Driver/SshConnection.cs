using System.Globalization;
using System.Net.Sockets;
using Block.Ssh.Auth;
using Block.Ssh.HostKeys;
using Block.Ssh.Options;
using Renci.SshNet;
using Renci.SshNet.Common;
using Renci.SshNet.Security;

namespace Block.Ssh.Driver;

/// <summary>
/// One SSH connection with its SFTP session, made as QEMU's ssh driver makes it: connect, check the host key, then
/// public-key authentication with the agent's keys (and <see cref="BlockdevOptionsSsh.IdentityFile"/>).
/// </summary>
internal sealed class SshConnection : IDisposable
{
    /// <summary>QEMU 7.2's message when no key is accepted.</summary>
    internal const string AuthenticationFailed = "failed to authenticate using publickey authentication and the identities held by your ssh-agent";

    private readonly SshAgent? _agent;

    private SshConnection(SftpClient client, SshAgent? agent, string user)
    {
        Client = client;
        _agent = agent;
        User = user;
    }

    /// <summary>The SFTP client over the connection.</summary>
    public SftpClient Client { get; }

    /// <summary>The user logged in as.</summary>
    public string User { get; }

    /// <summary>Connects, checks the host key and authenticates; every failure is a <see cref="BlockException"/> with QEMU's words.</summary>
    public static async Task<SshConnection> ConnectAsync(BlockdevOptionsSsh options, SshDriverOptions driverOptions, CancellationToken cancellationToken)
    {
        string user = options.User ?? Environment.UserName;
        if (!int.TryParse(options.Server.Port, NumberStyles.None, CultureInfo.InvariantCulture, out int port) || port is 0 or > 65535)
            throw new BlockException(Errno.EINVAL, $"Failed to connect to '{options.Server}': invalid port");

        var algorithms = new List<HostAlgorithm>();
        SshAgent? agent = TryAgent(driverOptions.ResolveAgentSocket(), algorithms);
        var sources = new List<IPrivateKeySource>();
        if (algorithms.Count > 0)
            sources.Add(new AgentKeySource(algorithms));
        if (options.IdentityFile != null)
            sources.Add(LoadKey(options.IdentityFile));
        AuthenticationMethod method = sources.Count > 0
            ? new PrivateKeyAuthenticationMethod(user, [.. sources])
            : new NoneAuthenticationMethod(user);

        var client = new SftpClient(new ConnectionInfo(options.Server.Host, port, user, method));
        string? refusal = null;
        var check = options.HostKeyCheck ?? SshHostKeyCheck.KnownHosts;
        var knownHosts = driverOptions.ResolveKnownHostsFiles();
        client.HostKeyReceived += (_, e) =>
        {
            refusal = HostKeyVerifier.Verify(check, new SshHostKey(e.HostKey), options.Server, knownHosts);
            e.CanTrust = refusal is null;
        };
        try
        {
            await client.ConnectAsync(cancellationToken).ConfigureAwait(false);
            return new SshConnection(client, agent, user);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            client.Dispose();
            agent?.Dispose();
            if (refusal != null)
                throw new BlockException(Errno.EINVAL, refusal, e);
            throw e switch
            {
                SshAuthenticationException => new BlockException(Errno.EPERM, AuthenticationFailed, e),
                SocketException s => new BlockException(Errno.EIO, $"Failed to connect to '{options.Server}': {s.Message}", e),
                _ => new BlockException(Errno.EIO, $"Failed to connect to '{options.Server}': {e.Message}", e),
            };
        }
        catch
        {
            client.Dispose();
            agent?.Dispose();
            throw;
        }
    }

    /// <summary>Lists the agent's keys; no agent, or one that cannot be reached, leaves the list empty, as for QEMU.</summary>
    private static SshAgent? TryAgent(string? socket, List<HostAlgorithm> algorithms)
    {
        if (string.IsNullOrEmpty(socket))
            return null;
        SshAgent? agent = null;
        try
        {
            agent = SshAgent.Connect(socket);
            foreach (var blob in agent.ListKeys())
                algorithms.AddRange(AgentKeyAlgorithm.For(agent, blob));
            return agent;
        }
        catch (Exception e) when (e is IOException or SocketException)
        {
            agent?.Dispose();
            algorithms.Clear();
            return null;
        }
    }

    private static PrivateKeyFile LoadKey(string path)
    {
        try
        {
            return new PrivateKeyFile(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or SshException or ArgumentException or InvalidOperationException or NotSupportedException)
        {
            throw new BlockException(Errno.EINVAL, $"Could not read the identity file '{path}': {e.Message}", e);
        }
    }

    public void Dispose()
    {
        Client.Dispose();
        _agent?.Dispose();
    }
}
