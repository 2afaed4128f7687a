using System.Diagnostics;
using System.Text.RegularExpressions;
using Block.Drivers;
using Block.Graph;
using Block.Qcow2;
using Block.TestSupport;

namespace Block.Gluster.Tests;

/// <summary>
/// A throwaway GlusterFS server: <c>glusterd</c> and a one-brick volume (<c>force</c>, the brick a directory of the
/// test's temporary directory) on 127.0.0.2, in private network, mount and PID namespaces (<c>unshare</c>). Killed,
/// with the brick process and everything else in the namespaces, on dispose.
/// </summary>
/// <remarks>
/// <para>Why namespaces: glusterd listens on the fixed port 24007 and writes to fixed system paths
/// (<c>/var/lib/glusterd</c>, <c>/var/log/glusterfs</c>, <c>/run/gluster</c>). In its own mount namespace those are
/// the test's directories and a private tmpfs; in its own network namespace it has its own loopback and port; in its
/// own PID namespace killing its first process kills the brick too. gluster refuses 127.0.0.1 as a brick host;
/// 127.0.0.2 (the namespace's loopback answers all of 127/8) works.</para>
/// <para>How the clients reach it: qemu-img, qemu-io and the <c>blk</c> executable run whole inside the network
/// namespace with <c>nsenter --net</c>; the library in this process gets
/// <see cref="GlusterDriverOptions.NetworkNamespace"/>. The brick's files are plain files of this machine's file
/// system: the tests make images there with qemu-img directly (gluster gives a file it has not seen its id at the
/// first lookup) and check what the clients wrote there.</para>
/// </remarks>
public sealed partial class GlusterServer : IDisposable
{
    public const string Volume = "vol0";
    private static readonly TimeSpan s_startLimit = TimeSpan.FromSeconds(60);
    private readonly Process _unshare;
    private readonly int _initPid;

    public GlusterServer()
    {
        Directory = new TempDirectory();
        Brick = Directory.File("brick");
        foreach (var dir in new[] { Brick, Directory.File("lib"), Directory.File("log") })
            System.IO.Directory.CreateDirectory(dir);
        string glusterd = ProcessRunner.Which("glusterd") ?? (System.IO.File.Exists("/usr/sbin/glusterd") ? "/usr/sbin/glusterd"
            : throw new InvalidOperationException("glusterd is missing: apt-get install glusterfs-server (test.sh installs it)"));
        // The namespaces' first process: loopback up, glusterd's fixed paths on the test's directories, then glusterd
        // as its child, while it stays on reaping, so that killing glusterd leaves the namespaces (and their network)
        // standing.
        System.IO.File.WriteAllText(Directory.File("server.sh"), $"""
            set -e
            ip link set lo up
            mount --make-rprivate /
            mkdir -p /var/lib/glusterd /var/log/glusterfs
            mount --bind {Directory.File("lib")} /var/lib/glusterd
            mount --bind {Directory.File("log")} /var/log/glusterfs
            mount -t tmpfs tmpfs /run
            {glusterd} -N --log-level=WARNING &
            while :; do wait; sleep 1; done

            """);
        _unshare = ProcessRunner.Start("unshare", ["--net", "--mount", "--pid", "--fork", "--kill-child", "--", "sh", Directory.File("server.sh")]);
        try
        {
            _initPid = WaitFor(() => Children(_unshare.Id).FirstOrDefault(), "the namespaces' first process");
            WaitFor(() => Gluster("volume", "create", Volume, $"127.0.0.2:{Brick}", "force").ExitCode == 0 ? 1 : 0, "glusterd");
            var start = Gluster("volume", "start", Volume);
            if (start.ExitCode != 0)
                throw new InvalidOperationException($"gluster volume start failed: {start.Stdout}{start.Stderr} {Log()}");
            WaitFor(() => BrickPids().Any() ? 1 : 0, "the brick process");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public TempDirectory Directory { get; }

    /// <summary>The brick's directory, as a local path.</summary>
    public string Brick { get; }

    /// <summary>The server's network namespace.</summary>
    public string NetworkNamespace => $"/proc/{_initPid}/ns/net";

    /// <summary>The local path of a file of the volume (on the brick).</summary>
    public string File(string name) => Path.Combine(Brick, name);

    /// <summary>The <c>gluster://</c> URL of a file of the volume.</summary>
    public static string Url(string name) => $"gluster://127.0.0.2/{Volume}/{name}";

    /// <summary>A fresh file name in the volume.</summary>
    public static string NewName(string ext) => $"{Guid.NewGuid():N}.{ext}";

    /// <summary>Runs the gluster CLI against this glusterd (its socket is under the private <c>/run</c>).</summary>
    public ProcessResult Gluster(params string[] args) =>
        ProcessRunner.Run("nsenter", ["-t", _initPid.ToString(System.Globalization.CultureInfo.InvariantCulture), "--net", "--mount", "--", "gluster", "--mode=script", .. args], TimeSpan.FromMinutes(2));

    /// <summary>Runs <paramref name="program"/> in the server's network namespace.</summary>
    public ProcessResult Run(string program, params string[] args) =>
        WithoutGfapiLog(ProcessRunner.Run("nsenter", ["--net=" + NetworkNamespace, "--", program, .. args], TimeSpan.FromMinutes(5)));

    /// <summary>Runs qemu-img over gluster; every run costs libgfapi 10.3's 10 s <c>glfs_fini</c>.</summary>
    public ProcessResult QemuImg(params string[] args) => Run(TestSupport.QemuImg.Path, args);

    /// <summary>Runs several qemu-img commands at once, so that their 10 s closes overlap.</summary>
    public ProcessResult[] QemuImgAll(params string[][] commands) =>
        Task.WhenAll(commands.Select(args => Task.Run(() => QemuImg(args)))).GetAwaiter().GetResult();

    /// <summary>Runs the <c>blk</c> executable built beside the tests, in the server's network namespace.</summary>
    public ProcessResult Blk(params string[] args) => Run(BlkRunner.ExecutablePath, args);

    public ProcessResult QemuIo(string image, string format, params string[] commands)
    {
        var args = new List<string> { "-f", format };
        foreach (var c in commands)
            args.AddRange(["-c", c]);
        args.Add(image);
        return Run(TestSupport.QemuIo.Path, [.. args]);
    }

    /// <summary>
    /// The result without gfapi's own log lines (<c>[date] I [io-stats.c:…] …</c>), which libgfapi writes to stderr
    /// at init and fini whatever the log level.
    /// </summary>
    private static ProcessResult WithoutGfapiLog(ProcessResult result) =>
        result with { Stderr = GfapiLogLine().Replace(result.Stderr, string.Empty) };

    [GeneratedRegex(@"^\[\d{4}-\d\d-\d\d [^\]]*\] [TDINWEC] \[.*\n?", RegexOptions.Multiline)]
    private static partial Regex GfapiLogLine();

    /// <summary>A graph whose gluster nodes reach this server, with <paramref name="requestTimeout"/> as their limit.</summary>
    public BlockGraph NewGraph(TimeSpan? requestTimeout = null) => new(new BlockGraphOptions
    {
        Drivers = DriverRegistry.CreateDefault().AddQcow2().AddGluster(new GlusterDriverOptions
        {
            NetworkNamespace = NetworkNamespace,
            RequestTimeout = requestTimeout ?? TimeSpan.FromSeconds(30),
        }),
    });

    /// <summary>The brick processes (<c>glusterfsd</c>) of this server's PID namespace.</summary>
    public IEnumerable<int> BrickPids() => ProcessesNamed("glusterfsd");

    /// <summary>Kills the brick and glusterd: the volume is gone, as when its server crashes.</summary>
    public void KillServer()
    {
        foreach (int pid in BrickPids().Concat(ProcessesNamed("glusterd")))
            Signal(pid, "KILL");
    }

    /// <summary>Stops (SIGSTOP) the brick: its socket stays open and nothing answers, as a hung server.</summary>
    public void FreezeBrick()
    {
        foreach (int pid in BrickPids())
            Signal(pid, "STOP");
    }

    private static void Signal(int pid, string signal) =>
        ProcessRunner.Run("kill", ["-" + signal, pid.ToString(System.Globalization.CultureInfo.InvariantCulture)]);

    private IEnumerable<int> ProcessesNamed(string name)
    {
        string ours = PidNamespace(_initPid) ?? "";
        foreach (var dir in System.IO.Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid))
                continue;
            if (ReadComm(pid) == name && PidNamespace(pid) == ours)
                yield return pid;
        }
    }

    private static string? PidNamespace(int pid)
    {
        try
        {
            return new FileInfo($"/proc/{pid}/ns/pid").LinkTarget;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static IEnumerable<int> Children(int pid)
    {
        string text;
        try
        {
            text = System.IO.File.ReadAllText($"/proc/{pid}/task/{pid}/children");
        }
        catch (IOException)
        {
            return [];
        }
        return text.Split(' ', StringSplitOptions.RemoveEmptyEntries).Select(s => int.Parse(s, System.Globalization.CultureInfo.InvariantCulture));
    }

    private static string? ReadComm(int pid)
    {
        try
        {
            return System.IO.File.ReadAllText($"/proc/{pid}/comm").Trim();
        }
        catch (IOException)
        {
            return null;
        }
    }

    private int WaitFor(Func<int> probe, string what)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < s_startLimit)
        {
            if (_unshare.HasExited)
                throw new InvalidOperationException($"the gluster server exited: {_unshare.StandardError.ReadToEnd()} {Log()}");
            int value = probe();
            if (value != 0)
                return value;
            Thread.Sleep(200);
        }
        throw new TimeoutException($"{what} did not start within {s_startLimit.TotalSeconds} s: {Log()}");
    }

    private string Log()
    {
        string log = Directory.File("log/glusterd.log");
        return System.IO.File.Exists(log) ? System.IO.File.ReadAllText(log) : "(no glusterd log)";
    }

    public void Dispose()
    {
        // Killing unshare kills its child (--kill-child), the PID namespace's init, and with it every process inside.
        try
        {
            _unshare.Kill(entireProcessTree: true);
            _unshare.WaitForExit(s_startLimit);
        }
        catch (InvalidOperationException)
        {
        }
        _unshare.Dispose();
        Directory.Dispose();
    }
}

[CollectionDefinition(Name)]
public sealed class GlusterServerCollection : ICollectionFixture<GlusterServer>
{
    public const string Name = "gluster server";
}
