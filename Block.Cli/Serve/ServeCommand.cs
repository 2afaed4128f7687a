using System.Net.Sockets;
using Block.Cli.Common;
using Block.Graph;
using Block.Nbd.Server;
using Block.Options;
using Block.Qmp;

namespace Block.Cli.Serve;

/// <summary>
/// <c>blk serve</c>: a storage daemon driven as qemu-storage-daemon 7.2 is. It builds a graph from
/// <c>--blockdev</c> and <c>--object</c>, serves QMP on every <c>--monitor</c>, and runs until <c>quit</c>, SIGTERM
/// SIGINT or SIGHUP, then closes every image (persistent bitmaps written, dirty flags cleared, locks dropped).
/// </summary>
internal static class ServeCommand
{
    /// <summary>The version line (<c>-V</c>).</summary>
    public const string VersionText = "blk serve version 0.1.0 (qemu-storage-daemon 7.2 compatible, QMP schema 2.9)";

    public static async Task<int> RunAsync(CliContext cli, string[] args)
    {
        TerminationSignals.EnsureDeliverable();
        ServeOptions options;
        try
        {
            options = ServeOptions.Parse(args);
        }
        catch (CliException e)
        {
            cli.Error(e.Message);
            return 1;
        }
        if (options.Help)
        {
            cli.Out.Write(HelpText);
            return 0;
        }
        if (options.Version)
        {
            cli.Out.WriteLine(VersionText);
            return 0;
        }
        if (options.Daemonize && !Daemon.IsChild)
            return await Daemon.RunParentAsync(cli, "serve", args, "--daemonize");

        await using var graph = cli.CreateGraph();
        await using var server = new QmpServer(graph);
        server.HandlerFailed += e => cli.Error($"internal error in a QMP command: {e}");
        await using var nbd = new NbdService(graph);
        NbdCommands.Register(server, nbd);
        var chardevs = new Dictionary<string, Chardev>(StringComparer.Ordinal);
        var listeners = new List<QmpListener>();
        var sessions = new List<Task>();
        using var stop = new CancellationTokenSource();
        using var signals = new TerminationSignals();
        try
        {
            foreach (var option in options.Options)
            {
                try
                {
                    await ApplyAsync(option, graph, nbd, server, chardevs, listeners, sessions, stop.Token);
                }
                catch (Exception e) when (e is BlockException or CliException)
                {
                    cli.Error($"{option}: {e.Message}");
                    return 1;
                }
            }
            foreach (var unused in chardevs.Values.Where(c => c.Socket != null && !c.InUse))
                unused.Socket!.Dispose();

            if (options.PidFile != null && !WritePidFile(cli, options.PidFile))
                return 1;
            if (Daemon.IsChild)
                Daemon.SignalReady();

            await Task.WhenAny(server.QuitRequested, signals.Received);
            return 0;
        }
        finally
        {
            // Stop serving first (queued replies such as quit's still go out), then close the images.
            await server.DisposeAsync();
            foreach (var listener in listeners)
                await listener.DisposeAsync();
            stop.Cancel();
            await Task.WhenAll(sessions).WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { }, TaskScheduler.Default);
            if (options.PidFile != null)
                TryDelete(options.PidFile);
        }
    }

    private static async Task ApplyAsync(ServeOption option, BlockGraph graph, NbdService nbd, QmpServer server, Dictionary<string, Chardev> chardevs,
        List<QmpListener> listeners, List<Task> sessions, CancellationToken stop)
    {
        switch (option.Name)
        {
            case "blockdev":
                var blockdev = option.Value.TrimStart().StartsWith('{')
                    ? graph.Parser.ParseJson(option.Value)
                    : graph.Parser.Parse(new OptionsReader(KeyValueParser.Parse(option.Value, impliedKey: "driver"), keyval: true));
                await graph.AddNodeAsync(blockdev);
                break;
            case "drive":
                await DriveOption.AddAsync(graph, option.Value);
                break;
            case "device":
                DeviceOption.Add(graph, option.Value);
                break;
            case "object":
                ObjectOption.Add(graph, option.Value);
                break;
            case "chardev":
                var chardev = Chardev.Create(option.Value);
                if (!chardevs.TryAdd(chardev.Id, chardev))
                {
                    chardev.Socket?.Dispose();
                    throw new CliException($"attempt to add duplicate property '{chardev.Id}' to object (type 'container')");
                }
                break;
            case "monitor":
                await StartMonitorAsync(option.Value, server, chardevs, listeners, sessions, stop);
                break;
            case "nbd-server":
                nbd.Start(new OptionsReader(KeyValueParser.Parse(option.Value), keyval: true));
                break;
            case "export":
                AddExport(nbd, option.Value);
                break;
            default:
                throw new CliException($"unrecognized option '--{option.Name}'");
        }
    }

    /// <summary><c>--export type=nbd,id=…,node-name=…[,name=…][,writable=on|off][,description=…]</c>, as QSD 7.2 takes it.</summary>
    private static void AddExport(NbdService nbd, string text)
    {
        var reader = new OptionsReader(KeyValueParser.Parse(text, impliedKey: "type"), keyval: true);
        string type = reader.String("type") ?? throw new BlockOptionsException("Parameter 'type' is missing");
        if (type != "nbd")
            throw new BlockOptionsException($"Parameter 'type' does not accept value '{type}'");
        if (!reader.Has("id"))
            throw reader.Missing("id");
        if (!reader.Has("node-name"))
            throw reader.Missing("node-name");
        nbd.AddExport(reader);
    }

    private static async Task StartMonitorAsync(string text, QmpServer server, Dictionary<string, Chardev> chardevs,
        List<QmpListener> listeners, List<Task> sessions, CancellationToken stop)
    {
        var reader = new OptionsReader(KeyValueParser.Parse(text, impliedKey: "chardev"), keyval: true);
        string id = reader.String("chardev") ?? throw new BlockOptionsException("Parameter 'chardev' is missing");
        string mode = reader.String("mode") ?? "control";
        bool pretty = reader.Bool("pretty") ?? false;
        reader.Finish();
        if (!chardevs.TryGetValue(id, out var chardev))
            throw new CliException($"chardev \"{id}\" not found");
        if (mode != "control")
            throw new CliException(mode == "readline"
                ? "Only QMP monitors are supported"
                : $"Parameter 'mode' does not accept value '{mode}'");
        if (chardev.InUse)
            throw new CliException($"Device '{id}' is in use");
        chardev.InUse = true;
        if (chardev.Socket is { } socket)
        {
            var listener = QmpListener.Start(server, socket, chardev.UnixPath, pretty);
            listeners.Add(listener);
            if (chardev.Wait)
                await listener.FirstClient.WaitAsync(stop);
        }
        else
        {
            // stdio: one session over the daemon's own stdin and stdout.
            var stream = new DuplexStream(Console.OpenStandardInput(), Console.OpenStandardOutput());
            sessions.Add(server.RunSessionAsync(stream, pretty, stop));
        }
    }

    private static bool WritePidFile(CliContext cli, string path)
    {
        try
        {
            File.WriteAllText(path, $"{Environment.ProcessId}\n");
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            cli.Error($"Cannot write pid file to '{path}': {e.Message}");
            return false;
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    /// <summary>A <c>--chardev</c>: a listening socket (unix or TCP), or stdio.</summary>
    private sealed class Chardev
    {
        public required string Id { get; init; }

        public Socket? Socket { get; init; }

        public string? UnixPath { get; init; }

        public bool Wait { get; init; }

        public bool InUse { get; set; }

        public static Chardev Create(string text)
        {
            var reader = new OptionsReader(KeyValueParser.Parse(text, impliedKey: "backend"), keyval: true);
            string backend = reader.String("backend") ?? throw new BlockOptionsException("Parameter 'backend' is missing");
            string id = reader.String("id") ?? throw new BlockOptionsException("Parameter 'id' is missing");
            if (backend == "stdio")
            {
                reader.Skip("signal");
                reader.Finish();
                return new Chardev { Id = id };
            }
            if (backend != "socket")
                throw new CliException($"chardev backend '{backend}' is not supported (socket and stdio are)");
            string? path = reader.String("path");
            string? host = reader.String("host");
            string? port = reader.String("port");
            bool server = reader.Bool("server") ?? false;
            bool wait = reader.Bool("wait") ?? true;
            reader.Skip("telnet");
            reader.Skip("nodelay");
            reader.Finish();
            if (!server)
                throw new CliException("only server sockets (server=on) can serve a monitor");
            if (path != null)
                return new Chardev { Id = id, Socket = QmpListener.BindUnix(path), UnixPath = path, Wait = wait };
            if (port is null)
                throw new CliException("chardev: socket: no host given");
            if (!int.TryParse(port, out int portNumber) || portNumber is < 0 or > 65535)
                throw new CliException($"Parameter 'port' expects a port number, got '{port}'");
            return new Chardev { Id = id, Socket = QmpListener.BindTcp(host ?? "0.0.0.0", portNumber), Wait = wait };
        }
    }

    private const string HelpText = """
        Usage: blk serve [options]
        A storage daemon with qemu-storage-daemon 7.2's command line and the QMP schema 2.9.

          -h, --help             display this help and exit
          -V, --version          output version information and exit

          --blockdev [driver=]<driver>[,node-name=<N>][,discard=ignore|unmap]
                     [,cache.direct=on|off][,cache.no-flush=on|off]
                     [,read-only=on|off][,force-share=on|off]
                     [,detect-zeroes=on|off|unmap][,driver specific parameters...]
                     or a JSON object of the same options
                                 add a block node (QMP blockdev-add)

          --drive id=<id>,file=<file>[,format=<fmt>][,if=none][,readonly=on|off]
                  [,cache.direct=on|off][,cache.no-flush=on|off][,aio=threads|native|io_uring]
                  [,discard=ignore|unmap][,detect-zeroes=on|off|unmap]
                  [,rerror=report|ignore|stop][,werror=report|ignore|enospc|stop]
                  [,throttling.{bps,iops}-{total,read,write}[-max[-length]]=<n>]
                  [,throttling.iops-size=<n>][,throttling.group=<name>][,stats-intervals.N=<s>]
                                 add a named backend (QEMU's -drive)

          --device virtio-blk-pci|ide-cd|scsi-cd,id=<id>,drive=<drive-id>
                                 attach a fixed disk or a CD-ROM with a tray to a drive

          --chardev socket,id=<id>,path=<path>,server=on[,wait=on|off]
          --chardev socket,id=<id>[,host=<host>],port=<port>,server=on[,wait=on|off]
          --chardev stdio,id=<id>
                                 configure a character device for a monitor

          --daemonize            daemonize the process, and have the parent exit
                                 once startup is complete

          --export [type=]nbd,id=<id>,node-name=<node-name>[,name=<export-name>]
                   [,writable=on|off][,description=<text>]
                                 export the specified block node over NBD
                                 (requires --nbd-server)

          --monitor [chardev=]<id>[,mode=control][,pretty=on|off]
                                 serve QMP on a character device

          --nbd-server addr.type=inet,addr.host=<host>,addr.port=<port>[,tls-creds=<id>][,max-connections=<n>]
          --nbd-server addr.type=unix,addr.path=<path>[,tls-creds=<id>][,max-connections=<n>]
                                 start an NBD server for exporting block nodes

          --object secret,id=<id>,data=<data>|file=<file>[,format=raw|base64]
                                 create a secret
          --object throttle-group,id=<id>[,limits.{bps,iops}-{total,read,write}[-max[-length]]=<n>]
                   [,limits.iops-size=<n>]
                                 create a throttle group that backends may join

          --pidfile <path>       write process ID to a file after startup

        The daemon stops on QMP 'quit', SIGTERM, SIGINT or SIGHUP, closing every image.

        """;
}
