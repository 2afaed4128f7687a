using System.Runtime.InteropServices;
using Block.Drivers;
using Block.Gluster.Driver;
using Block.Gluster.Interop;
using Block.Gluster.Options;
using Block.Options;
using Block.Qapi;

namespace Block.Gluster;

/// <summary>
/// The <c>gluster</c> protocol driver: an image on a GlusterFS volume, read and written through libgfapi, from QAPI
/// <c>BlockdevOptionsGluster</c> or a <c>gluster://</c>, <c>gluster+tcp://</c> or <c>gluster+unix://</c> file name,
/// as QEMU's gluster driver.
/// </summary>
/// <remarks>
/// Each node has its own gfapi instance, as in QEMU. Every server of the options is registered as a volfile server
/// (<c>glfs_set_volfile_server</c>, once per server), so gfapi fetches the volume's layout from the next one when one
/// does not answer.
/// </remarks>
public sealed class GlusterDriver(GlusterDriverOptions? options = null) : BlockDriver
{
    private const int OpenReadOnly = 0;
    private const int OpenReadWrite = 2;
    private const int OpenWriteOnly = 1;
    private const int OpenCreate = 0x40;
    private const int OpenTruncate = 0x200;
    /// <summary>0600, as QEMU creates.</summary>
    private const uint CreateMode = 0x180;

    private readonly GlusterDriverOptions _options = options ?? new GlusterDriverOptions();

    /// <inheritdoc />
    public override string Name => "gluster";

    /// <inheritdoc />
    public override BlockDriverKind Kind => BlockDriverKind.Protocol;

    /// <inheritdoc />
    public override IReadOnlyList<string> ProtocolPrefixes { get; } = ["gluster", "gluster+tcp", "gluster+unix", "gluster+rdma"];

    /// <inheritdoc />
    public override bool CanCreate => true;

    /// <inheritdoc />
    /// <remarks>QEMU 7.2's list, with Debian's build (fallocate and zerofill both there).</remarks>
    public override IReadOnlyList<CreateOptionDescriptor> CreateOptions { get; } =
    [
        new("size", CreateOptionType.Size, "Virtual disk size"),
        new("preallocation", CreateOptionType.String, "Preallocation mode (allowed values: off, falloc, full)"),
        new("debug", CreateOptionType.Number, "Gluster log level, valid range is 0-9"),
        new("logfile", CreateOptionType.String, "Logfile path of libgfapi"),
    ];

    /// <inheritdoc />
    public override BlockdevOptions OptionsFromFilename(string filename) => GlusterUrl.Parse(filename);

    /// <inheritdoc />
    public override BlockdevOptions ParseOptions(OptionsReader reader, BlockdevOptionsParser parser)
    {
        ArgumentNullException.ThrowIfNull(reader);
        string? filename = reader.String("filename");
        string? volume = reader.String("volume");
        string? path = reader.String("path");
        var servers = reader.ObjectList("server");
        long? debug = reader.Int("debug");
        string? logfile = reader.String("logfile");
        BlockdevOptionsGluster options;
        if (filename != null)
        {
            if (volume != null || path != null || servers != null)
                throw new BlockOptionsException("volume, path and server cannot be used at the same time as a file option");
            options = GlusterUrl.Parse(filename);
        }
        else
        {
            if (servers is null || servers.Count == 0)
                throw new BlockOptionsException("Please provide 'server' option with valid fields in array of hostinfo");
            options = new BlockdevOptionsGluster
            {
                Volume = volume ?? throw reader.Missing("volume"),
                Path = path ?? throw reader.Missing("path"),
                Server = [.. servers.Select(ReadServer)],
            };
        }
        return options with { Debug = debug ?? options.Debug, Logfile = logfile ?? options.Logfile };
    }

    /// <summary>Reads QAPI <c>GlusterServer</c>: <c>type</c>, then <c>host</c> and <c>port</c> (tcp) or <c>path</c> (unix).</summary>
    private static GlusterServer ReadServer(OptionsReader reader)
    {
        string type = reader.RequiredString("type");
        GlusterServer server;
        switch (type)
        {
            case "tcp":
                server = GlusterServer.ForTcp(reader.RequiredString("host"), reader.String("port"));
                if (server.Port != null && !int.TryParse(server.Port, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out _))
                    throw new BlockOptionsException($"Parameter '{reader.FullName("port")}' expects a port number");
                // InetSocketAddress's other members shape name resolution, which gfapi does itself.
                foreach (var name in new[] { "numeric", "to", "ipv4", "ipv6", "keep-alive", "mptcp" })
                    reader.Skip(name);
                break;
            case "unix":
                server = GlusterServer.ForUnix(reader.RequiredString("path"));
                foreach (var name in new[] { "abstract", "tight" })
                    reader.Skip(name);
                break;
            default:
                throw new BlockOptionsException($"Parameter '{reader.FullName("type")}' does not accept value '{type}'");
        }
        reader.Finish();
        return server;
    }

    /// <inheritdoc />
    public override async ValueTask<NodeDriver> OpenAsync(NodeOpenContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var options = (BlockdevOptionsGluster)context.Options;
        string filename = GlusterUrl.Format(options);
        var connection = await GlusterConnection.ConnectAsync(Settings(options)).ConfigureAwait(false);
        try
        {
            int flags = context.Node.ReadOnly ? OpenReadOnly : OpenReadWrite;
            if (context.Node.CacheDirect)
                flags |= ODirect;
            nint fd = await connection.RunAsync(() =>
            {
                nint opened = LibGfapi.Open(connection.Handle, options.Path, flags);
                if (opened == 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    throw new BlockException(GlusterConnection.ErrnoOf(errno), $"Could not open '{filename}': {Marshal.GetPInvokeErrorMessage(errno)}");
                }
                return opened;
            }, "the open").ConfigureAwait(false);
            try
            {
                var stat = await connection.RunAsync(() => GlusterNodeDriver.Stat(fd), "a stat").ConfigureAwait(false);
                return new GlusterNodeDriver(context.Node, connection, fd, stat.Size, filename);
            }
            catch
            {
                LibGfapi.Close(fd);
                throw;
            }
        }
        catch
        {
            connection.Close();
            throw;
        }
    }

    /// <summary><c>O_DIRECT</c> on x86-64; arm64 numbers it differently.</summary>
    private static int ODirect => RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? 0x10000 : 0x4000;

    /// <inheritdoc />
    /// <remarks>As QEMU: the file is created with mode 0600 (<c>glfs_creat</c>, truncating), then sized with the preallocation mode.</remarks>
    public override async ValueTask CreateAsync(ImageCreateRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        ulong size = request.Size ?? 0;
        if (size > (ulong)Graph.BlockNode.MaxLength)
            throw new BlockOptionsException("Image size must be less than 8 EiB!");
        var preallocation = request.GetEnum<PreallocMode>("preallocation") ?? PreallocMode.Off;
        if (preallocation is not (PreallocMode.Off or PreallocMode.Falloc or PreallocMode.Full))
            throw new BlockOptionsException($"Unsupported preallocation mode: {QapiEnum<PreallocMode>.ToWire(preallocation)}");
        var options = GlusterUrl.Parse(request.Filename, request.Graph.Warn) with
        {
            Debug = request.GetNumber("debug"),
            Logfile = request.GetString("logfile"),
        };
        var connection = await GlusterConnection.ConnectAsync(Settings(options)).ConfigureAwait(false);
        try
        {
            await connection.RunAsync(() =>
            {
                nint fd = LibGfapi.Creat(connection.Handle, options.Path, OpenWriteOnly | OpenCreate | OpenTruncate, CreateMode);
                if (fd == 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    throw new BlockException(GlusterConnection.ErrnoOf(errno), $"Could not create '{request.Filename}': {Marshal.GetPInvokeErrorMessage(errno)}");
                }
                try
                {
                    GlusterNodeDriver.Resize(fd, 0, (long)size, preallocation);
                }
                finally
                {
                    LibGfapi.Close(fd);
                }
                return 0;
            }, "the create").ConfigureAwait(false);
        }
        finally
        {
            connection.Close();
        }
    }

    /// <summary>The connection settings from the options, with QEMU's defaults and its cap on the log level.</summary>
    private GlusterSettings Settings(BlockdevOptionsGluster options) => new()
    {
        Volume = options.Volume,
        Path = options.Path,
        Servers = options.Server,
        Debug = (int)Math.Clamp(options.Debug ?? BlockdevOptionsGluster.DefaultDebug, 0, BlockdevOptionsGluster.MaxDebug),
        Logfile = options.Logfile ?? BlockdevOptionsGluster.DefaultLogfile,
        NetworkNamespace = _options.NetworkNamespace,
        RequestTimeout = _options.RequestTimeout,
    };
}
