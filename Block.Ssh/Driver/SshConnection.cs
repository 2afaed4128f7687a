using System.Globalization;
using System.Runtime.InteropServices;
using Block.Ssh.HostKeys;
using Block.Ssh.Interop;
using Block.Ssh.Options;
using Block.Ssh.Sftp;

namespace Block.Ssh.Driver;

/// <summary>
/// One SSH connection with its SFTP channel, made as QEMU 7.2's ssh driver makes it with the same library (libssh):
/// connect, check the host key, try the "none" method, then public-key authentication with the agent's keys and the
/// user's default identities (<c>ssh_userauth_publickey_auto</c>), and before them
/// <see cref="BlockdevOptionsSsh.IdentityFile"/> when it is given.
/// </summary>
internal sealed class SshConnection : IDisposable
{
    /// <summary>QEMU 7.2's message when no key is accepted.</summary>
    internal const string AuthenticationFailed = "failed to authenticate using publickey authentication and the identities held by your ssh-agent";

    private static readonly Lazy<string?> s_unavailable = new(LibSsh.Probe, LazyThreadSafetyMode.ExecutionAndPublication);

    private SshConnection(SftpChannel channel, string user)
    {
        Channel = channel;
        User = user;
    }

    /// <summary>The SFTP channel over the connection.</summary>
    public SftpChannel Channel { get; }

    /// <summary>The user logged in as.</summary>
    public string User { get; }

    /// <summary>Connects, checks the host key and authenticates; every failure is a <see cref="BlockException"/> with QEMU's words.</summary>
    /// <remarks>libssh's connect blocks, so it runs on a thread-pool thread; the token is checked before it starts.</remarks>
    public static Task<SshConnection> ConnectAsync(BlockdevOptionsSsh options, SshDriverOptions driverOptions, CancellationToken cancellationToken)
    {
        if (s_unavailable.Value is { } missing)
            throw new BlockException(Errno.ENOTSUP, missing);
        string user = options.User ?? Environment.UserName;
        if (!uint.TryParse(options.Server.Port, NumberStyles.None, CultureInfo.InvariantCulture, out uint port) || port is 0 or > 65535)
            throw new BlockException(Errno.EINVAL, $"Failed to connect to '{options.Server}': invalid port");
        cancellationToken.ThrowIfCancellationRequested();
        return Task.Run(() => Connect(options, driverOptions, user, port), cancellationToken);
    }

    private static unsafe SshConnection Connect(BlockdevOptionsSsh options, SshDriverOptions driverOptions, string user, uint port)
    {
        nint session = LibSsh.New();
        if (session == 0)
            throw new BlockException(Errno.ENOMEM, "failed to initialize libssh session");
        nint channel = 0;
        try
        {
            LibSsh.SetOption(session, LibSsh.Option.Host, options.Server.Host);
            LibSsh.SetOption(session, LibSsh.Option.Port, &port);
            LibSsh.SetOption(session, LibSsh.Option.User, user);
            // Many requests in flight leave small tails of SSH packets behind; Nagle's algorithm would hold each
            // one back until an ACK came (up to 40 ms, delayed), which held 16 MiB writes to 15 MiB/s.
            int noDelay = 1;
            LibSsh.SetOption(session, LibSsh.Option.NoDelay, &noDelay);
            if (driverOptions.ResolveAgentSocket() is { Length: > 0 } agent)
                LibSsh.SetOption(session, LibSsh.Option.IdentityAgent, agent);
            if (LibSsh.Connect(session) != LibSsh.Ok)
                throw new BlockException(Errno.EIO, $"Failed to connect to '{options.Server}': {LibSsh.GetError(session)}");

            var key = ServerKey(session);
            if (HostKeyVerifier.Verify(options.HostKeyCheck ?? SshHostKeyCheck.KnownHosts, key, options.Server, driverOptions.ResolveKnownHostsFiles()) is { } refusal)
                throw new BlockException(Errno.EINVAL, refusal);

            Authenticate(session, options.IdentityFile);

            channel = LibSsh.ChannelNew(session);
            if (channel == 0 || LibSsh.ChannelOpenSession(channel) != LibSsh.Ok)
                throw new BlockException(Errno.EIO, $"failed to open a channel: {LibSsh.GetError(session)}");
            if (LibSsh.ChannelRequestSubsystem(channel, "sftp") != LibSsh.Ok)
                throw new BlockException(Errno.EIO, $"failed to initialize sftp session: {LibSsh.GetError(session)}");
            // From here the SFTP channel owns the session and the libssh channel, also when its handshake fails.
            (nint ownedSession, nint ownedChannel) = (session, channel);
            (session, channel) = (0, 0);
            return new SshConnection(SftpChannel.Start(ownedSession, ownedChannel, options.Server.Host), user);
        }
        finally
        {
            if (channel != 0)
                LibSsh.ChannelFree(channel);
            if (session != 0)
            {
                LibSsh.Disconnect(session);
                LibSsh.Free(session);
            }
        }
    }

    /// <summary>The server's host key as its SSH wire blob.</summary>
    private static SshHostKey ServerKey(nint session)
    {
        if (LibSsh.GetServerPublicKey(session, out nint key) != LibSsh.Ok)
            throw new BlockException(Errno.EINVAL, $"failed to read remote host key: {LibSsh.GetError(session)}");
        try
        {
            if (LibSsh.ExportPublicKeyBase64(key, out nint base64) != LibSsh.Ok)
                throw new BlockException(Errno.EINVAL, "failed to read remote host key");
            try
            {
                return new SshHostKey(Convert.FromBase64String(Marshal.PtrToStringUTF8(base64) ?? string.Empty));
            }
            finally
            {
                LibSsh.StringFreeChar(base64);
            }
        }
        finally
        {
            LibSsh.KeyFree(key);
        }
    }

    /// <summary>QEMU's order ("none", then every public key libssh finds), with the key file first when there is one.</summary>
    private static void Authenticate(nint session, string? identityFile)
    {
        int rc = LibSsh.UserAuthNone(session, 0);
        if (rc == LibSsh.AuthSuccess)
            return;
        if (rc == LibSsh.AuthError)
            throw new BlockException(Errno.EIO, $"failed to authenticate using none authentication: {LibSsh.GetError(session)}");
        int methods = LibSsh.UserAuthList(session, 0);
        if (identityFile != null)
        {
            int imported = LibSsh.ImportPrivateKeyFile(identityFile, 0, 0, 0, out nint key);
            if (imported != LibSsh.Ok)
            {
                string why = imported == LibSsh.Eof ? "it does not exist or cannot be read" : "it is not a private key libssh can read without a passphrase";
                throw new BlockException(Errno.EINVAL, $"Could not read the identity file '{identityFile}': {why}");
            }
            try
            {
                rc = LibSsh.UserAuthPublicKey(session, 0, key);
            }
            finally
            {
                LibSsh.KeyFree(key);
            }
            if (rc == LibSsh.AuthSuccess)
                return;
        }
        if ((methods & LibSsh.AuthMethodPublicKey) != 0)
        {
            rc = LibSsh.UserAuthPublicKeyAuto(session, 0, 0);
            if (rc == LibSsh.AuthSuccess)
                return;
            if (rc == LibSsh.AuthError)
                throw new BlockException(Errno.EIO, $"failed to authenticate using publickey authentication: {LibSsh.GetError(session)}");
        }
        throw new BlockException(Errno.EPERM, AuthenticationFailed);
    }

    public void Dispose() => Channel.Dispose();
}
