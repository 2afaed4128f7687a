using Block.Drivers;
using Block.Nfs.Driver;
using Block.Nfs.Options;
using Block.Options;

namespace Block.Nfs;

/// <summary>
/// The <c>nfs</c> protocol driver: an image on an NFSv3 server, read and written through libnfs, from QAPI
/// <c>BlockdevOptionsNfs</c> or an <c>nfs://</c> file name, as QEMU's nfs driver.
/// </summary>
/// <remarks>
/// The path's last component is the file and the directory before it is the export that is mounted, as in QEMU. Each
/// node has its own mount and its own event-loop thread, which serves all of the node's requests at once.
/// </remarks>
public sealed class NfsDriver(NfsDriverOptions? options = null) : BlockDriver
{
    /// <summary>QEMU's cap on <c>readahead-size</c>: 1 MiB.</summary>
    public const long MaxReadahead = 1 << 20;

    /// <summary>QEMU's cap on <c>page-cache-size</c>: 8 MiB of 4 KiB pages.</summary>
    public const long MaxPageCache = (8 << 20) / 4096;

    /// <summary>QEMU's cap on <c>debug</c>.</summary>
    public const long MaxDebugLevel = 2;

    private const int OpenReadOnly = 0;
    private const int OpenReadWrite = 2;
    /// <summary>0600, as QEMU creates.</summary>
    private const int CreateMode = 0x180;

    private readonly NfsDriverOptions _options = options ?? new NfsDriverOptions();

    /// <inheritdoc />
    public override string Name => "nfs";

    /// <inheritdoc />
    public override BlockDriverKind Kind => BlockDriverKind.Protocol;

    /// <inheritdoc />
    public override IReadOnlyList<string> ProtocolPrefixes { get; } = ["nfs"];

    /// <inheritdoc />
    public override bool CanCreate => true;

    /// <inheritdoc />
    /// <remarks>QEMU's nfs driver takes only the size.</remarks>
    public override IReadOnlyList<CreateOptionDescriptor> CreateOptions { get; } =
    [
        new("size", CreateOptionType.Size, "Virtual disk size"),
    ];

    /// <inheritdoc />
    public override BlockdevOptions OptionsFromFilename(string filename) => NfsUrl.Parse(filename);

    /// <inheritdoc />
    public override BlockdevOptions ParseOptions(OptionsReader reader, BlockdevOptionsParser parser)
    {
        ArgumentNullException.ThrowIfNull(reader);
        string? filename = reader.String("filename");
        var serverReader = reader.Object("server");
        string? path = reader.String("path");
        long? user = reader.Int("user");
        long? group = reader.Int("group");
        long? synCount = reader.Int("tcp-syn-count");
        long? readahead = reader.Int("readahead-size");
        long? pageCache = reader.Int("page-cache-size");
        long? debug = reader.Int("debug");
        BlockdevOptionsNfs options;
        if (filename != null)
        {
            if (serverReader != null || path != null)
                throw new BlockOptionsException("server and path cannot be used at the same time as a file option");
            options = NfsUrl.Parse(filename);
        }
        else
        {
            if (serverReader is null)
                throw reader.Missing("server");
            options = new BlockdevOptionsNfs
            {
                Server = ReadServer(serverReader),
                Path = path ?? throw reader.Missing("path"),
            };
        }
        return options with
        {
            User = user ?? options.User,
            Group = group ?? options.Group,
            TcpSynCount = synCount ?? options.TcpSynCount,
            ReadaheadSize = readahead ?? options.ReadaheadSize,
            PageCacheSize = pageCache ?? options.PageCacheSize,
            Debug = debug ?? options.Debug,
        };
    }

    /// <summary>Reads QAPI <c>NFSServer</c>: <c>type</c> (only <c>inet</c>) and <c>host</c>.</summary>
    private static NfsServer ReadServer(OptionsReader reader)
    {
        string type = reader.RequiredString("type");
        if (type != "inet")
            throw new BlockOptionsException($"Parameter '{reader.FullName("type")}' does not accept value '{type}'");
        var server = new NfsServer(reader.RequiredString("host"));
        reader.Finish();
        return server;
    }

    /// <inheritdoc />
    public override async ValueTask<NodeDriver> OpenAsync(NodeOpenContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var options = (BlockdevOptionsNfs)context.Options;
        if (context.Node.CacheDirect && options.ReadaheadSize is > 0)
            throw new BlockException(Errno.EINVAL, "Cannot enable NFS readahead if cache.direct = on");
        if (context.Node.CacheDirect && options.PageCacheSize is > 0)
            throw new BlockException(Errno.EINVAL, "Cannot enable NFS pagecache if cache.direct = on");
        var settings = Settings(options, context.Graph.Warn);
        var (export, file) = Split(options.Path);
        var mount = await Mount(settings, export).ConfigureAwait(false);
        try
        {
            nint handle;
            try
            {
                handle = await mount.OpenAsync(file, NfsOperation.Open, context.Node.ReadOnly ? OpenReadOnly : OpenReadWrite).ConfigureAwait(false);
            }
            catch (BlockException e)
            {
                throw new BlockException(e.Errno, $"Failed to open file : {e.Message}");
            }
            Interop.LibNfs.Stat64 stat;
            try
            {
                stat = await mount.StatAsync(handle).ConfigureAwait(false);
            }
            catch (BlockException e)
            {
                throw new BlockException(e.Errno, $"Failed to fstat file: {e.Message}");
            }
            const ulong typeMask = 0xF000, regular = 0x8000;
            return new NfsNodeDriver(context.Node, mount, handle, checked((long)stat.Size), (stat.Mode & typeMask) == regular, NfsUrl.Format(options));
        }
        catch
        {
            mount.Dispose();
            throw;
        }
    }

    /// <inheritdoc />
    /// <remarks>As QEMU: the file is created with mode 0600 (<c>nfs_creat</c>), then truncated to the size.</remarks>
    public override async ValueTask CreateAsync(ImageCreateRequest request, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(request);
        ulong size = request.Size ?? 0;
        if (size > (ulong)Graph.BlockNode.MaxLength)
            throw new BlockOptionsException("Image size must be less than 8 EiB!");
        var options = NfsUrl.Parse(request.Filename);
        var (export, file) = Split(options.Path);
        var mount = await Mount(Settings(options, request.Graph.Warn), export).ConfigureAwait(false);
        try
        {
            nint handle;
            try
            {
                handle = await mount.OpenAsync(file, NfsOperation.Create, CreateMode).ConfigureAwait(false);
            }
            catch (BlockException e)
            {
                throw new BlockException(e.Errno, $"Failed to open file : {e.Message}");
            }
            try
            {
                await mount.RunAsync(NfsOperation.Truncate, handle, (long)size).ConfigureAwait(false);
            }
            catch (BlockException e)
            {
                throw new BlockException(e.Errno, $"Failed to truncate file: {e.Message}");
            }
            finally
            {
                await CloseQuietly(mount, handle).ConfigureAwait(false);
            }
        }
        finally
        {
            mount.Dispose();
        }
    }

    private static async Task CloseQuietly(NfsMount mount, nint handle)
    {
        try
        {
            await mount.RunAsync(NfsOperation.Close, handle).ConfigureAwait(false);
            await mount.RunAsync(NfsOperation.Umount, 0).ConfigureAwait(false);
        }
        catch (BlockException)
        {
            // The file is written; a server that does not answer the close loses nothing.
        }
    }

    private static async Task<NfsMount> Mount(NfsSettings settings, string export)
    {
        try
        {
            return await NfsMount.MountAsync(settings, export).ConfigureAwait(false);
        }
        catch (BlockException e) when (e.Errno != Errno.ENOTSUP)
        {
            throw new BlockException(e.Errno, $"Failed to mount nfs share: {e.Message}");
        }
    }

    /// <summary>QEMU's split of the path: the export before the last <c>/</c>, the file (with its <c>/</c>) after.</summary>
    private static (string Export, string File) Split(string path)
    {
        int slash = path.LastIndexOf('/');
        if (slash < 0)
            throw new BlockOptionsException("Invalid URL specified");
        return (path[..slash], path[slash..]);
    }

    /// <summary>The context settings from the options, with QEMU's caps and its warnings.</summary>
    private NfsSettings Settings(BlockdevOptionsNfs options, Action<string> warn)
    {
        long? readahead = options.ReadaheadSize;
        if (readahead > MaxReadahead)
        {
            warn($"Truncating NFS readahead size to {MaxReadahead}");
            readahead = MaxReadahead;
        }
        long? pageCache = options.PageCacheSize;
        if (pageCache > MaxPageCache)
        {
            warn($"Limiting NFS page cache to {MaxPageCache} pages");
            pageCache = MaxPageCache;
        }
        long? debug = options.Debug;
        if (debug > MaxDebugLevel)
        {
            warn($"Limiting NFS debug level to {MaxDebugLevel}");
            debug = MaxDebugLevel;
        }
        return new NfsSettings
        {
            Server = options.Server.Host,
            Uid = (int?)options.User,
            Gid = (int?)options.Group,
            TcpSynCount = (int?)options.TcpSynCount,
            ReadaheadBytes = readahead is { } r and >= 0 ? (uint)r : null,
            PageCachePages = pageCache is { } p and >= 0 ? (uint)p : null,
            Debug = (int?)debug,
            NetworkNamespace = _options.NetworkNamespace,
            RequestTimeout = _options.RequestTimeout,
        };
    }
}
