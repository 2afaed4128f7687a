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
public sealed partial class GlusterServer : NamespacedServer
{
    public const string Volume = "vol0";

    public GlusterServer()
        : base("gluster server")
    {
        Brick = Directory.File("brick");
        foreach (var dir in new[] { Brick, Directory.File("lib"), Directory.File("log") })
            System.IO.Directory.CreateDirectory(dir);
        string glusterd = ProcessRunner.Which("glusterd") ?? (System.IO.File.Exists("/usr/sbin/glusterd") ? "/usr/sbin/glusterd"
            : throw new InvalidOperationException("glusterd is missing: apt-get install glusterfs-server (test.sh installs it)"));
        // The namespaces' first process: loopback up, glusterd's fixed paths on the test's directories, then glusterd
        // as its child, while it stays on reaping, so that killing glusterd leaves the namespaces (and their network)
        // standing.
        var script = $"""
            set -e
            ip link set lo up
            mount --make-rprivate /
            mkdir -p /var/lib/glusterd /var/log/glusterfs
            mount --bind {Directory.File("lib")} /var/lib/glusterd
            mount --bind {Directory.File("log")} /var/log/glusterfs
            mount -t tmpfs tmpfs /run
            {glusterd} -N --log-level=WARNING &
            while :; do wait; sleep 1; done

            """;
        try
        {
            Start(script);
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

    /// <summary>The brick's directory, as a local path.</summary>
    public string Brick { get; }

    /// <summary>The local path of a file of the volume (on the brick).</summary>
    public string File(string name) => Path.Combine(Brick, name);

    /// <summary>The <c>gluster://</c> URL of a file of the volume.</summary>
    public static string Url(string name) => $"gluster://127.0.0.2/{Volume}/{name}";

    /// <summary>A fresh file name in the volume.</summary>
    public static string NewName(string ext) => $"{Guid.NewGuid():N}.{ext}";

    /// <summary>Runs the gluster CLI against this glusterd (its socket is under the private <c>/run</c>).</summary>
    public ProcessResult Gluster(params string[] args) =>
        ProcessRunner.Run("nsenter", ["-t", InitPid.ToString(System.Globalization.CultureInfo.InvariantCulture), "--net", "--mount", "--", "gluster", "--mode=script", .. args], TimeSpan.FromMinutes(2));

    /// <summary>Runs <paramref name="program"/> in the server's network namespace, without gfapi's log lines.</summary>
    public override ProcessResult Run(string program, params string[] args) => WithoutGfapiLog(base.Run(program, args));

    /// <summary>Runs several qemu-img commands at once, so that their 10 s closes (libgfapi 10.3's <c>glfs_fini</c>) overlap.</summary>
    public ProcessResult[] QemuImgAll(params string[][] commands) =>
        Task.WhenAll(commands.Select(args => Task.Run(() => QemuImg(args)))).GetAwaiter().GetResult();

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
        string ours = PidNamespace(InitPid) ?? "";
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

    protected override string Log()
    {
        string log = Directory.File("log/glusterd.log");
        return System.IO.File.Exists(log) ? System.IO.File.ReadAllText(log) : "(no glusterd log)";
    }
}

[CollectionDefinition(Name)]
public sealed class GlusterServerCollection : ICollectionFixture<GlusterServer>
{
    public const string Name = "gluster server";
}
