using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using Block.TestSupport;

namespace Block.Ssh.Tests;

/// <summary>
/// A throwaway OpenSSH server on a free loopback port, run as the current user with a generated host key and user
/// key, its config and state in a temporary directory; and an ssh-agent holding the user key. Killed on dispose.
/// Its <c>sftp</c> subsystem is OpenSSH's sftp-server logging every request to <see cref="SftpLogPath"/>, or the
/// command a test gives.
/// </summary>
public sealed class SshServer : IDisposable
{
    private static readonly TimeSpan s_hang = TimeSpan.FromSeconds(60);
    private readonly Process _sshd;
    private readonly Process _agent;

    public SshServer()
        : this(null)
    {
    }

    /// <summary>A server whose <c>sftp</c> subsystem is <paramref name="subsystem"/> (a command line run by the user's shell).</summary>
    internal SshServer(string? subsystem)
    {
        Directory = new TempDirectory();
        string sshd = ProcessRunner.Which("sshd") ?? (File.Exists("/usr/sbin/sshd") ? "/usr/sbin/sshd"
            : throw new InvalidOperationException("sshd is missing: apt-get install openssh-server (test.sh installs it)"));
        Keygen("ed25519", HostKeyPath);
        Keygen("ed25519", UserKeyPath);
        Keygen("ed25519", OtherKeyPath);
        File.Copy(UserKeyPath + ".pub", Directory.File("authorized_keys"));
        HostKeyBlob = Convert.FromBase64String(File.ReadAllText(HostKeyPath + ".pub").Split(' ')[1]);
        Port = FreePort();
        File.WriteAllText(Directory.File("sshd_config"), $"""
            Port {Port}
            ListenAddress 127.0.0.1
            HostKey {HostKeyPath}
            AuthorizedKeysFile {Directory.File("authorized_keys")}
            PidFile {Directory.File("sshd.pid")}
            StrictModes no
            UsePAM no
            PasswordAuthentication no
            KbdInteractiveAuthentication no
            PermitRootLogin prohibit-password
            Subsystem sftp {subsystem ?? $"{SftpServerPath()} -e -l DEBUG3 2>>{SftpLogPath}"}

            """);
        if (Environment.UserName == "root")
            System.IO.Directory.CreateDirectory("/run/sshd"); // sshd's privilege separation directory, as the package makes it
        _sshd = StartAndWaitFor(sshd, ["-D", "-e", "-f", Directory.File("sshd_config")], "Server listening on");
        _agent = StartAndWaitFor("ssh-agent", ["-D", "-a", AgentSocket], "SSH_AUTH_SOCK");
        var added = ProcessRunner.Run("ssh-add", [UserKeyPath], s_hang, environment: new Dictionary<string, string> { ["SSH_AUTH_SOCK"] = AgentSocket });
        if (added.ExitCode != 0)
            throw new InvalidOperationException("ssh-add failed: " + added.Stderr);
        File.WriteAllText(KnownHostsPath, $"[127.0.0.1]:{Port} {File.ReadAllText(HostKeyPath + ".pub")}");
    }

    public TempDirectory Directory { get; }

    public int Port { get; }

    public string User => Environment.UserName;

    public string HostKeyPath => Directory.File("host_ed25519");

    public string UserKeyPath => Directory.File("user_ed25519");

    /// <summary>A key the server does not accept, and whose public half is not the host's.</summary>
    public string OtherKeyPath => Directory.File("other_ed25519");

    public string AgentSocket => Directory.File("agent.sock");

    public string KnownHostsPath => Directory.File("known_hosts");

    /// <summary>What OpenSSH's sftp-server logged (at DEBUG3: one line per request), when it is the subsystem.</summary>
    public string SftpLogPath => Directory.File("sftp.log");

    /// <summary>OpenSSH's sftp-server program (Debian's openssh-sftp-server, which openssh-server depends on).</summary>
    private static string SftpServerPath() =>
        new[] { "/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server", "/usr/libexec/sftp-server" }.FirstOrDefault(File.Exists)
        ?? throw new InvalidOperationException("sftp-server is missing: apt-get install openssh-sftp-server");

    public byte[] HostKeyBlob { get; }

    public string Sha256Hex => Convert.ToHexStringLower(SHA256.HashData(HostKeyBlob));

    public string Sha1Hex => Convert.ToHexStringLower(SHA1.HashData(HostKeyBlob));

    public string Md5Colons => string.Join(':', MD5.HashData(HostKeyBlob).Select(b => b.ToString("x2")));

    /// <summary>The <c>ssh://</c> URI of a file in the server's directory, with the host key checked by its SHA-256.</summary>
    public string Uri(string name, string? query = null) =>
        $"ssh://{User}@127.0.0.1:{Port}{Directory.File(name)}?host_key_check={query ?? "sha256:" + Sha256Hex}";

    /// <summary>The environment qemu-img needs to reach the server: the agent.</summary>
    public Dictionary<string, string> QemuEnvironment => new() { ["SSH_AUTH_SOCK"] = AgentSocket };

    /// <summary>The pids of sshd's per-connection children: killing them drops the clients' connections.</summary>
    public IReadOnlyList<int> ConnectionPids()
    {
        var result = ProcessRunner.Run("pgrep", ["-P", _sshd.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)], s_hang);
        return result.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToList();
    }

    private static void Keygen(string type, string path)
    {
        var r = ProcessRunner.Run("ssh-keygen", ["-q", "-t", type, "-N", "", "-C", "block-test", "-f", path], s_hang);
        if (r.ExitCode != 0)
            throw new InvalidOperationException("ssh-keygen failed: " + r.Stderr);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Starts a daemon in the foreground and waits for the line that says it is ready, on either stream.</summary>
    private static Process StartAndWaitFor(string program, string[] args, string ready)
    {
        var process = ProcessRunner.Start(program, args);
        var seen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var log = new System.Text.StringBuilder();
        void OnLine(object? sender, DataReceivedEventArgs e)
        {
            if (e.Data is null)
                return;
            lock (log)
                log.AppendLine(e.Data);
            if (e.Data.Contains(ready, StringComparison.Ordinal))
                seen.TrySetResult();
        }
        process.OutputDataReceived += OnLine;
        process.ErrorDataReceived += OnLine;
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        process.Exited += (_, _) => seen.TrySetException(new InvalidOperationException($"{program} exited: {log}"));
        process.EnableRaisingEvents = true;
        if (!seen.Task.Wait(s_hang))
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"{program} did not start: {log}");
        }
        return process;
    }

    public void Dispose()
    {
        foreach (var p in new[] { _sshd, _agent })
        {
            try
            {
                p.Kill(entireProcessTree: true);
                p.WaitForExit(s_hang);
            }
            catch (InvalidOperationException)
            {
            }
            p.Dispose();
        }
        Directory.Dispose();
    }
}

[CollectionDefinition(Name)]
public sealed class SshServerCollection : ICollectionFixture<SshServer>
{
    public const string Name = "ssh server";
}
