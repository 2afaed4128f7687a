using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Block.TestSupport;

namespace Block.Rbd.Tests;

/// <summary>
/// A throwaway one-node Ceph 16 cluster (one ceph-mon, one ceph-osd on memstore, cephx, no mgr) started by
/// <c>ceph/start-cluster.sh</c> in a temporary directory, on loopback only, stopped when disposed: the fixture kills
/// exactly the two daemons it started, by the PIDs their pid files name.
/// </summary>
/// <remarks>
/// No network namespace: the test process itself (librbd in-process), qemu-img and blk must all reach the cluster,
/// and an in-process client cannot enter another namespace. Every daemon binds 127.0.0.1 only (<c>public addr</c>),
/// and keeps its files in the temporary directory (no <c>/var/lib/ceph</c>, <c>/var/run/ceph</c> or
/// <c>/etc/ceph</c>), so nothing reaches the machine's network or system paths.
/// </remarks>
public sealed class CephCluster : IDisposable
{
    private readonly TempDirectory _dir = new();
    private readonly List<int> _pids = [];

    public CephCluster()
    {
        try
        {
            Start();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The cluster's configuration file (monitor address, cephx, the admin keyring).</summary>
    public string Conf => _dir.File("ceph.conf");

    /// <summary>The directory holding the cluster's files; a test may put its own files here.</summary>
    public string Directory => _dir.Path;

    /// <summary>The pool created for rbd.</summary>
    public const string Pool = "rbd";

    /// <summary>The monitor's msgr v1 port.</summary>
    public int MonPort { get; private set; }

    /// <summary>How long the start took.</summary>
    public TimeSpan StartTime { get; private set; }

    /// <summary>The client.admin key (base64, as the keyring has it).</summary>
    public string AdminKey => File.ReadAllLines(_dir.File("ceph.client.admin.keyring"))
        .Select(l => l.Trim()).First(l => l.StartsWith("key = ", StringComparison.Ordinal))["key = ".Length..];

    /// <summary>An <c>rbd:</c> file name of <paramref name="image"/> in this cluster, with <paramref name="extra"/> options appended.</summary>
    public string Name(string image, string extra = "") => $"rbd:{Pool}/{image}:conf={Conf}{extra}";

    private static int s_nextImage;

    /// <summary>A fresh image name.</summary>
    public static string NewImageName(string prefix = "img") => $"{prefix}{Interlocked.Increment(ref s_nextImage)}-{Guid.NewGuid().ToString("N")[..6]}";

    private void Start()
    {
        string script = Path.Combine(AppContext.BaseDirectory, "ceph", "start-cluster.sh");
        MonPort = FreePortPair();
        var clock = Stopwatch.StartNew();
        var result = ProcessRunner.Run("bash", [script, _dir.Path, MonPort.ToString(System.Globalization.CultureInfo.InvariantCulture)], TimeSpan.FromSeconds(90));
        foreach (var name in new[] { "mon.a", "osd.0" })
        {
            string pidFile = _dir.File($"run/{name}.pid");
            if (File.Exists(pidFile) && int.TryParse(File.ReadAllText(pidFile).Trim(), out int pid))
                _pids.Add(pid);
        }
        StartTime = clock.Elapsed;
        if (result.ExitCode != 0 || !result.Stdout.Contains("ready", StringComparison.Ordinal))
            throw new InvalidOperationException($"the Ceph cluster did not start ({result.ExitCode}): {result.Stdout}{result.Stderr}\n{Logs()}");
    }

    /// <summary>The tail of the daemons' logs, for a failure message.</summary>
    public string Logs()
    {
        var logs = new System.Text.StringBuilder();
        string dir = _dir.File("log");
        if (!System.IO.Directory.Exists(dir))
            return string.Empty;
        foreach (var log in System.IO.Directory.GetFiles(dir))
        {
            logs.AppendLine($"== {log}");
            foreach (var line in File.ReadLines(log).TakeLast(15))
                logs.AppendLine(line);
        }
        return logs.ToString();
    }

    /// <summary>Runs the <c>rbd</c> tool against the cluster (admin user); throws on failure.</summary>
    public string Rbd(params string[] args) =>
        ProcessRunner.Run("rbd", ["-c", Conf, "-p", Pool, .. args], TimeSpan.FromSeconds(60)).EnsureSuccess("rbd " + string.Join(' ', args)).Stdout;

    /// <summary>Kills the OSD (SIGKILL): every request to it from now on waits for ever unless timed out.</summary>
    public void KillOsd() => Kill(_dir.File("run/osd.0.pid"));

    /// <summary>Kills the monitor (SIGKILL).</summary>
    public void KillMon() => Kill(_dir.File("run/mon.a.pid"));

    private void Kill(string pidFile)
    {
        int pid = int.Parse(File.ReadAllText(pidFile).Trim(), System.Globalization.CultureInfo.InvariantCulture);
        if (!_pids.Contains(pid))
            throw new InvalidOperationException($"pid {pid} was not started by this cluster");
        KillPid(pid);
        _pids.Remove(pid);
    }

    private static void KillPid(int pid)
    {
        try
        {
            using var process = Process.GetProcessById(pid);
            process.Kill();
            process.WaitForExit(10_000);
        }
        catch (ArgumentException)
        {
            // Already gone.
        }
        catch (InvalidOperationException)
        {
            // Already gone.
        }
    }

    /// <summary>Two consecutive free loopback ports (msgr v1 on the first, v2 on the second); returns the first.</summary>
    private static int FreePortPair()
    {
        for (int attempt = 0; attempt < 100; attempt++)
        {
            using var first = new TcpListener(IPAddress.Loopback, 0);
            first.Start();
            int port = ((IPEndPoint)first.LocalEndpoint).Port;
            if (port >= 65535)
                continue;
            try
            {
                using var second = new TcpListener(IPAddress.Loopback, port + 1);
                second.Start();
                return port;
            }
            catch (SocketException)
            {
                // Taken: try another pair.
            }
        }
        throw new InvalidOperationException("no two consecutive free loopback ports");
    }

    public void Dispose()
    {
        foreach (int pid in _pids)
            KillPid(pid);
        _pids.Clear();
        _dir.Dispose();
    }
}
