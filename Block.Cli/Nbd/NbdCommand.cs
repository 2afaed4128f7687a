using System.Runtime.InteropServices;
using Block.Cli.Common;
using Block.Cli.Io;
using Block.Cli.Serve;
using Block.Graph;
using Block.Nbd.Server;
using Block.Options;
using Block.Qapi;

namespace Block.Cli.Nbd;

/// <summary>
/// <c>blk nbd</c>: qemu-nbd 7.2 as a server (not the kernel client <c>-c</c>). It opens one image as qemu-img does
/// and exports it on a unix socket (<c>-k</c>) or TCP (<c>-b</c>/<c>-p</c>), and, unless <c>-t</c>, exits when the
/// last client that finished its handshake disconnects.
/// </summary>
internal static class NbdCommand
{
    private const string UsageHint = "Try `blk nbd --help' for more information.";

    public static async Task<int> RunAsync(CliContext cli, string[] args)
    {
        var getopt = new GetOpt("hVp:b:k:e:tx:D:B:f:rsl:n", new Dictionary<string, (bool, string)>
        {
            ["help"] = (false, "h"),
            ["version"] = (false, "V"),
            ["port"] = (true, "p"),
            ["bind"] = (true, "b"),
            ["socket"] = (true, "k"),
            ["shared"] = (true, "e"),
            ["persistent"] = (false, "t"),
            ["export-name"] = (true, "x"),
            ["description"] = (true, "D"),
            ["bitmap"] = (true, "B"),
            ["format"] = (true, "f"),
            ["read-only"] = (false, "r"),
            ["snapshot"] = (false, "s"),
            ["load-snapshot"] = (true, "l"),
            ["nocache"] = (false, "n"),
            ["cache"] = (true, "cache"),
            ["aio"] = (true, "aio"),
            ["discard"] = (true, "discard"),
            ["detect-zeroes"] = (true, "detect-zeroes"),
            ["image-opts"] = (false, "image-opts"),
            ["object"] = (true, "object"),
            ["tls-creds"] = (true, "tls-creds"),
            ["pid-file"] = (true, "pid-file"),
            ["fork"] = (false, "fork"),
        });
        List<(string Code, string? Argument)> options;
        List<string> operands;
        try
        {
            (options, operands) = getopt.Parse(args);
        }
        catch (GetOptException e)
        {
            cli.Error(e.GlibcMessage);
            cli.Error(UsageHint);
            return 1;
        }

        var open = new OpenArgs { Filename = string.Empty };
        var settings = new Settings();
        var objects = new List<string>();
        foreach (var (code, arg) in options)
        {
            switch (code)
            {
                case "h":
                    cli.Out.Write(HelpText);
                    return 0;
                case "V":
                    cli.Out.WriteLine(VersionText);
                    return 0;
                case "p":
                    if (!int.TryParse(arg, out int port) || port is < 0 or > 65535)
                        return Fail(cli, $"Invalid port '{arg}'");
                    settings.Port = port;
                    break;
                case "b":
                    settings.Bind = arg!;
                    break;
                case "k":
                    settings.Socket = arg;
                    break;
                case "e":
                    if (!int.TryParse(arg, out int shared) || shared < 1)
                        return Fail(cli, $"Invalid shared device number '{arg}'");
                    settings.Shared = shared;
                    break;
                case "t":
                    settings.Persistent = true;
                    break;
                case "x":
                    if (System.Text.Encoding.UTF8.GetByteCount(arg!) > Block.Nbd.Protocol.NbdProtocol.MaxString)
                        return Fail(cli, $"export name '{arg}' too long");
                    settings.ExportName = arg!;
                    break;
                case "D":
                    if (System.Text.Encoding.UTF8.GetByteCount(arg!) > Block.Nbd.Protocol.NbdProtocol.MaxString)
                        return Fail(cli, $"export description '{arg}' too long");
                    settings.Description = arg;
                    break;
                case "B":
                    settings.Bitmaps.Add(arg!);
                    break;
                case "f":
                    open = open with { Format = arg };
                    break;
                case "r":
                    open = open with { ReadOnly = true };
                    break;
                case "s":
                    open = open with { Snapshot = true };
                    break;
                case "l":
                    settings.LoadSnapshot = arg;
                    open = open with { ReadOnly = true };
                    break;
                case "n":
                    open = open with { Cache = CacheMode.TryParse("none", out var none) ? none : open.Cache };
                    break;
                case "cache":
                    if (!CacheMode.TryParse(arg!, out var cache))
                        return Fail(cli, $"Invalid cache mode `{arg}'");
                    open = open with { Cache = cache };
                    break;
                case "aio":
                    if (!QapiEnum<BlockdevAioOptions>.TryParse(arg!, out var aio))
                        return Fail(cli, $"Invalid aio mode '{arg}'");
                    open = open with { Aio = aio };
                    break;
                case "discard":
                    if (!QemuIo.TryParseDiscard(arg!, out var discard))
                        return Fail(cli, $"Invalid discard mode `{arg}'");
                    open = open with { Discard = discard };
                    break;
                case "detect-zeroes":
                    if (!QapiEnum<BlockdevDetectZeroesOptions>.TryParse(arg!, out var zeroes))
                        return Fail(cli, $"Failed to parse detect_zeroes mode: invalid parameter value: {arg}");
                    open = open with { DetectZeroes = zeroes };
                    break;
                case "image-opts":
                    open = open with { ImageOpts = true };
                    break;
                case "object":
                    objects.Add(arg!);
                    break;
                case "tls-creds":
                    settings.TlsCreds = arg;
                    break;
                case "pid-file":
                    settings.PidFile = arg;
                    break;
                case "fork":
                    settings.Fork = true;
                    break;
            }
        }
        if (operands.Count != 1)
        {
            cli.Error("Invalid number of arguments");
            cli.Err.WriteLine(UsageHint);
            return 1;
        }
        if (open.ImageOpts && open.Format != null)
            return Fail(cli, "--image-opts and -f are mutually exclusive");
        if (open.DetectZeroes == BlockdevDetectZeroesOptions.Unmap && open.Discard != BlockdevDiscardOptions.Unmap)
            return Fail(cli, "setting detect-zeroes to unmap is not allowed without setting discard operation to unmap");
        open = open with { Filename = operands[0] };

        if (settings.Fork && !Daemon.IsChild)
            return await Daemon.RunParentAsync(cli, "nbd", args, "--fork");

        await using var graph = cli.CreateGraph();
        foreach (string text in objects)
        {
            try
            {
                ObjectOption.Add(graph, text);
            }
            catch (BlockException e)
            {
                return Fail(cli, e.Message);
            }
        }
        System.Net.Security.SslServerAuthenticationOptions? tls = null;
        if (settings.TlsCreds != null)
        {
            try
            {
                tls = NbdServerTls.FromGraph(graph, settings.TlsCreds);
            }
            catch (BlockException e)
            {
                return Fail(cli, $"Failed to get TLS creds: {e.Message}");
            }
        }

        BlockBackend backend;
        try
        {
            backend = await ImageOpener.OpenAsync(cli, graph, open);
        }
        catch (BlockException e)
        {
            return Fail(cli, $"Failed to blk_new_open '{open.Filename}': {OpenMessage(open, e)}");
        }
        await using var backendScope = backend;
        NbdServer server;
        try
        {
            if (settings.LoadSnapshot != null)
                await LoadSnapshotAsync(backend, settings.LoadSnapshot);
            server = StartServer(settings, backend, writable: !open.ReadOnly, tls);
        }
        catch (BlockException e)
        {
            return Fail(cli, e.Message);
        }
        await using var serverScope = server;

        if (settings.PidFile != null)
        {
            try
            {
                File.WriteAllText(settings.PidFile, $"{Environment.ProcessId}\n");
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                return Fail(cli, $"Failed to write pid file '{settings.PidFile}': {e.Message}");
            }
        }
        try
        {
            if (Daemon.IsChild)
                Daemon.SignalReady();
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            if (!settings.Persistent)
            {
                server.ConnectionClosed += negotiated =>
                {
                    if (negotiated && server.ConnectionCount == 0)
                        done.TrySetResult();
                };
            }
            using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; done.TrySetResult(); });
            using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; done.TrySetResult(); });
            await done.Task;
            return 0;
        }
        finally
        {
            if (settings.PidFile != null)
                File.Delete(settings.PidFile);
        }
    }

    private static NbdServer StartServer(Settings settings, BlockBackend backend, bool writable, System.Net.Security.SslServerAuthenticationOptions? tls)
    {
        // qemu-nbd serves -e clients at once (one by default); more wait in the listen backlog.
        var server = new NbdServer(new NbdServerOptions { MaxConnections = settings.Shared, Tls = tls });
        try
        {
            // qemu-nbd builds its bitmap list by prepending, so clients list the contexts last -B first.
            var bitmaps = Enumerable.Reverse(settings.Bitmaps).ToArray();
            server.AddExport(new NbdExport(settings.ExportName, backend, writable, settings.Description, bitmaps: bitmaps));
            if (settings.Socket != null)
                server.Listen(NbdServer.BindUnix(settings.Socket), settings.Socket);
            else
                server.Listen(NbdServer.BindTcp(settings.Bind, settings.Port));
            return server;
        }
        catch
        {
            _ = server.DisposeAsync().AsTask();
            throw;
        }
    }

    /// <summary>
    /// <c>-l</c>: <c>snapshot.id=ID,snapshot.name=NAME</c>, or one word tried as an id and then as a name, as
    /// QEMU's <c>bdrv_snapshot_load_tmp_by_id_or_name</c> does.
    /// </summary>
    private static async Task LoadSnapshotAsync(BlockBackend backend, string text)
    {
        var root = backend.Root!;
        try
        {
            if (text.StartsWith("snapshot.", StringComparison.Ordinal))
            {
                var reader = new OptionsReader(KeyValueParser.Parse(text), keyval: true);
                var snapshot = reader.Object("snapshot") ?? throw reader.Missing("snapshot");
                string? id = snapshot.String("id");
                string? name = snapshot.String("name");
                snapshot.Finish();
                reader.Finish();
                await root.LoadSnapshotAsync(id, name);
                return;
            }
            try
            {
                await root.LoadSnapshotAsync(text, null);
            }
            catch (BlockException e) when (e.Errno == Errno.ENOENT)
            {
                await root.LoadSnapshotAsync(null, text);
            }
        }
        catch (BlockException e)
        {
            throw new BlockException(e.Errno, $"Failed to load snapshot: {e.Message}");
        }
    }

    /// <summary>The reason qemu-nbd gives after the file name: qemu-img's "Could not open 'x': …" for a missing file.</summary>
    private static string OpenMessage(OpenArgs open, BlockException e) =>
        open.ImageOpts || e.Message.StartsWith("Could not open", StringComparison.Ordinal)
            ? e.Message
            : $"Could not open '{open.Filename}': {e.Message}";

    private static int Fail(CliContext cli, string message)
    {
        cli.Error(message);
        return 1;
    }

    /// <summary>What the command line asks of the server.</summary>
    private sealed class Settings
    {
        public string? Socket { get; set; }

        public string Bind { get; set; } = "0.0.0.0";

        public int Port { get; set; } = Block.Nbd.Protocol.NbdProtocol.DefaultPort;

        public int Shared { get; set; } = 1;

        public bool Persistent { get; set; }

        public string ExportName { get; set; } = string.Empty;

        public string? Description { get; set; }

        public List<string> Bitmaps { get; } = [];

        public string? LoadSnapshot { get; set; }

        public string? TlsCreds { get; set; }

        public string? PidFile { get; set; }

        public bool Fork { get; set; }
    }

    /// <summary>The version line (<c>-V</c>).</summary>
    public const string VersionText = "blk nbd version 0.1.0 (qemu-nbd 7.2 compatible)";

    private const string HelpText = """
        Usage: blk nbd [OPTIONS] FILE
        Export a disk image over NBD (qemu-nbd 7.2 compatible; serving only)

          -h, --help                display this help and exit
          -V, --version             output version information and exit

        Connection properties:
          -p, --port=PORT           port to listen on (default `10809')
          -b, --bind=IFACE          interface to bind to (default `0.0.0.0')
          -k, --socket=PATH         path to the unix socket
          -e, --shared=NUM          device can be shared by NUM clients (default '1')
          -t, --persistent          don't exit on the last connection
          -x, --export-name=NAME    expose export by name (default is empty string)
          -D, --description=TEXT    export a human-readable description

        Exposing part of the image:
          -B, --bitmap=NAME         expose a persistent dirty bitmap

        General purpose options:
          --object type,id=ID,...   define an object such as 'secret' or
                                    'tls-creds-x509'
          --tls-creds=ID            use id of an earlier --object to provide TLS
          --fork                    fork off the server process and exit the parent
                                    once the server is running
          --pid-file=PATH           store the server's process ID in the given file

        Block device options:
          -f, --format=FORMAT       set image format (raw, qcow2, ...)
          -r, --read-only           export read-only
          -s, --snapshot            use FILE as an external snapshot, create a temporary
                                    file with backing_file=FILE, redirect the write to
                                    the temporary one
          -l, --load-snapshot=SNAPSHOT_PARAM
                                    load an internal snapshot inside FILE and export it
                                    as an read-only device, SNAPSHOT_PARAM format is
                                    'snapshot.id=[ID],snapshot.name=[NAME]', or
                                    '[ID_OR_NAME]'
          -n, --nocache             disable host cache
              --cache=MODE          set cache mode used to access the disk image, the
                                    valid options are: 'none', 'writeback' (default),
                                    'writethrough', 'directsync' and 'unsafe'
              --aio=MODE            set AIO mode (native, io_uring or threads)
              --discard=MODE        set discard mode (ignore, unmap)
              --detect-zeroes=MODE  set detect-zeroes mode (off, on, unmap)
              --image-opts          treat FILE as a full set of image options

        """;
}
