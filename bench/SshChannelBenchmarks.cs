using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using BenchmarkDotNet.Attributes;
using Block.Io;
using Block.Ssh;
using Block.Ssh.Driver;
using Block.Ssh.Options;
using Block.Ssh.Sftp;

namespace Block.Bench;

/// <summary>
/// Our SFTP client on libssh alone: 4 KiB reads and writes, QD1, and a 1 MiB read (eight 64 KiB requests in flight), against
/// a throwaway OpenSSH sshd (internal-sftp, another process) serving a page-cached 64 MiB raw file, so that the memory
/// diagnoser counts the client's allocations only.
/// </summary>
[MemoryDiagnoser]
public class SshChannelBenchmarks
{
    private const int Ops = 1000;
    private const long Size = 64L << 20;
    private string _dir = null!;
    private Process _sshd = null!;
    private SshConnection _connection = null!;
    private byte[] _handle = null!;
    private AlignedBuffer _buffer = null!;
    private long[] _offsets = null!;

    [GlobalSetup]
    public void Setup()
    {
        _dir = Directory.CreateTempSubdirectory("blk-bench-ssh-").FullName;
        string image = Path.Combine(_dir, "disk.raw");
        var data = new byte[Size];
        new Random(42).NextBytes(data);
        File.WriteAllBytes(image, data);
        foreach (var key in new[] { "host", "user" })
            Process.Start("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", Path.Combine(_dir, key)])!.WaitForExit();
        File.Copy(Path.Combine(_dir, "user.pub"), Path.Combine(_dir, "authorized_keys"));
        int port;
        using (var probe = new TcpListener(IPAddress.Loopback, 0))
        {
            probe.Start();
            port = ((IPEndPoint)probe.LocalEndpoint).Port;
        }
        File.WriteAllText(Path.Combine(_dir, "sshd_config"), $"""
            Port {port}
            ListenAddress 127.0.0.1
            HostKey {_dir}/host
            AuthorizedKeysFile {_dir}/authorized_keys
            PidFile {_dir}/sshd.pid
            StrictModes no
            UsePAM no
            PasswordAuthentication no
            Subsystem sftp internal-sftp

            """);
        if (Environment.UserName == "root")
            Directory.CreateDirectory("/run/sshd");
        string sshd = File.Exists("/usr/sbin/sshd") ? "/usr/sbin/sshd" : "sshd";
        _sshd = Process.Start(new ProcessStartInfo(sshd, ["-D", "-e", "-f", Path.Combine(_dir, "sshd_config")]) { RedirectStandardError = true })
            ?? throw new InvalidOperationException("sshd did not start (install openssh-server)");
        var options = new BlockdevOptionsSsh
        {
            Server = new SshServerAddress("127.0.0.1", port.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            Path = image,
            HostKeyCheck = SshHostKeyCheck.None,
            IdentityFile = Path.Combine(_dir, "user"),
        };
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                _connection = SshConnection.ConnectAsync(options, new SshDriverOptions { AgentSocket = "" }, CancellationToken.None).GetAwaiter().GetResult();
                break;
            }
            catch (BlockException) when (deadline.Elapsed < TimeSpan.FromSeconds(60) && !_sshd.HasExited)
            {
                Thread.Sleep(50);
            }
        }
        _handle = _connection.Channel.OpenAsync(image, SftpOpenFlags.Read | SftpOpenFlags.Write, null).GetAwaiter().GetResult();
        _buffer = AlignedBuffer.Allocate(1 << 20);
        var rng = new Random(7);
        _offsets = Enumerable.Range(0, Ops).Select(_ => rng.NextInt64(Size / 4096) * 4096).ToArray();
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _connection.Channel.CloseAsync(_handle).GetAwaiter().GetResult();
        _connection.Dispose();
        _sshd.Kill();
        _sshd.WaitForExit();
        _buffer.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    /// <summary>Random 4 KiB reads, one at a time (QD1).</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public async Task SftpRead4K()
    {
        var buffer = new IoVector(_buffer.Memory[..4096]);
        foreach (long offset in _offsets)
            await _connection.Channel.ReadAsync(_handle, offset, buffer);
    }

    /// <summary>Random 4 KiB writes, one at a time (QD1).</summary>
    [Benchmark(OperationsPerInvoke = Ops)]
    public async Task SftpWrite4K()
    {
        var buffer = new IoVector(_buffer.Memory[..4096]);
        foreach (long offset in _offsets)
            await _connection.Channel.WriteAsync(_handle, offset, buffer);
    }

    /// <summary>1 MiB reads, one after another: eight 64 KiB requests in flight for each.</summary>
    [Benchmark(OperationsPerInvoke = 64)]
    public async Task SftpRead1M()
    {
        var buffer = new IoVector(_buffer.Memory);
        for (int i = 0; i < 64; i++)
            await _connection.Channel.ReadAsync(_handle, (long)i << 20, buffer);
    }
}
