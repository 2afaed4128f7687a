using System.Diagnostics;
using Block.Drivers;
using Block.Graph;
using Block.Qcow2;
using Block.TestSupport;

namespace Block.Nfs.Tests;

/// <summary>
/// A throwaway NFSv3 server: <c>ganesha.nfsd</c> with the VFS backend exporting a directory of the test's temporary
/// directory, and the <c>rpcbind</c> that libnfs asks for its ports, both in private network, mount and PID
/// namespaces (<c>unshare</c>). Killed, with everything in the namespaces, on dispose.
/// </summary>
/// <remarks>
/// <para>Why namespaces: libnfs always asks the portmapper on port 111, which is the machine's, and other runs need it
/// too. In its own network namespace the server has its own loopback and its own port 111; in its own mount namespace
/// rpcbind's and ganesha's files under <c>/run</c> go to a private tmpfs; in its own PID namespace killing its first
/// process kills them all, so nothing outlives the test.</para>
/// <para>How the clients reach it: a network namespace is a per-thread property. qemu-img, qemu-io and the <c>blk</c>
/// executable run whole inside it with <c>nsenter --net</c>; the library in this process gets
/// <see cref="NfsDriverOptions.NetworkNamespace"/>, so only each mount's event-loop thread enters it, and every
/// socket libnfs opens is opened there. The export's files stay plain files of this machine's file system, which the
/// tests read and write directly.</para>
/// </remarks>
public sealed class NfsServer : NamespacedServer
{
    public NfsServer()
        : base("nfs server")
    {
        Export = Directory.File("export");
        System.IO.Directory.CreateDirectory(Export);
        System.IO.Directory.CreateDirectory(Directory.File("recovery"));
        string ganesha = ProcessRunner.Which("ganesha.nfsd")
            ?? throw new InvalidOperationException("ganesha.nfsd is missing: apt-get install nfs-ganesha nfs-ganesha-vfs (test.sh installs them)");
        string rpcbind = ProcessRunner.Which("rpcbind") ?? (System.IO.File.Exists("/usr/sbin/rpcbind") ? "/usr/sbin/rpcbind"
            : throw new InvalidOperationException("rpcbind is missing: apt-get install rpcbind (test.sh installs it)"));
        System.IO.File.WriteAllText(Directory.File("ganesha.conf"), $$"""
            NFS_CORE_PARAM {
              Protocols = 3;
              NFS_Port = 2049;
              MNT_Port = 20048;
              Enable_NLM = false;
              Enable_RQUOTA = false;
              Mount_Path_Pseudo = true;
            }
            NFSV4 {
              Graceless = true;
              RecoveryRoot = {{Directory.File("recovery")}};
            }
            EXPORT {
              Export_Id = 1;
              Path = {{Export}};
              Pseudo = {{Export}};
              Access_Type = RW;
              Squash = No_Root_Squash;
              Protocols = 3;
              Transports = TCP;
              SecType = sys;
              FSAL { Name = VFS; }
            }
            LOG { Default_Log_Level = WARN; }

            """);
        // The namespaces' first process: loopback up, a private /run, rpcbind, then ganesha in the foreground.
        var script = $"""
            set -e
            ip link set lo up
            mount --make-rprivate /
            mount -t tmpfs tmpfs /run
            mkdir -p /run/rpcbind
            {rpcbind} -f -w &
            exec {ganesha} -F -L {Directory.File("ganesha.log")} -f {Directory.File("ganesha.conf")} -p {Directory.File("ganesha.pid")}

            """;
        try
        {
            Start(script);
            WaitFor(() => RpcServices().Contains(" 100003 ") && RpcServices().Contains(" 100005 ") ? 1 : 0, "ganesha's nfs and mount services");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The exported directory, as a local path.</summary>
    public string Export { get; }

    /// <summary>The local path of a file of the export.</summary>
    public string File(string name) => Path.Combine(Export, name);

    /// <summary>The <c>nfs://</c> URL of a file of the export.</summary>
    public string Url(string name, string? query = null) => $"nfs://127.0.0.1{Export}/{name}" + (query is null ? "" : "?" + query);

    /// <summary>A fresh file name in the export.</summary>
    public static string NewName(string ext) => $"{Guid.NewGuid():N}.{ext}";

    /// <summary>A graph whose nfs nodes reach this server, with <paramref name="requestTimeout"/> as their limit.</summary>
    public BlockGraph NewGraph(TimeSpan? requestTimeout = null) => new(new BlockGraphOptions
    {
        Drivers = DriverRegistry.CreateDefault().AddQcow2().AddNfs(new NfsDriverOptions
        {
            NetworkNamespace = NetworkNamespace,
            RequestTimeout = requestTimeout ?? TimeSpan.FromSeconds(20),
        }),
    });

    /// <summary>Kills ganesha (not rpcbind): the server stops answering, as a crashed filer does.</summary>
    public void KillGanesha()
    {
        foreach (int pid in Children(InitPid).Append(InitPid))
        {
            if (ReadComm(pid) == "ganesha.nfsd")
                Process.GetProcessById(pid).Kill();
        }
    }

    private string RpcServices() => Run("rpcinfo", "-p", "127.0.0.1").Stdout.Replace('\t', ' ').Replace("  ", " ", StringComparison.Ordinal) + " ";

    protected override string Log()
    {
        string log = Directory.File("ganesha.log");
        return System.IO.File.Exists(log) ? System.IO.File.ReadAllText(log) : "(no ganesha log)";
    }
}

[CollectionDefinition(Name)]
public sealed class NfsServerCollection : ICollectionFixture<NfsServer>
{
    public const string Name = "nfs server";
}
