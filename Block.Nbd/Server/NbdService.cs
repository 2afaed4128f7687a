using System.Net.Sockets;
using Block.Graph;
using Block.Options;

namespace Block.Nbd.Server;

/// <summary>
/// A graph's NBD server as QEMU's monitor sees it: at most one running <see cref="NbdServer"/> and its exports,
/// started, filled and stopped by <c>blk serve</c>'s <c>--nbd-server</c> and <c>--export</c> and by the QMP
/// commands <c>nbd-server-start</c>, <c>nbd-server-add</c>, <c>nbd-server-remove</c> and <c>nbd-server-stop</c>, with
/// QEMU 7.2's arguments and error messages.
/// </summary>
public sealed class NbdService : IAsyncDisposable
{
    private readonly BlockGraph _graph;
    private readonly List<BlockExportEntry> _exports = [];
    private NbdServer? _server;

    /// <summary>A service over <paramref name="graph"/>, with no server running.</summary>
    public NbdService(BlockGraph graph)
    {
        ArgumentNullException.ThrowIfNull(graph);
        _graph = graph;
    }

    /// <summary>The running server, or null.</summary>
    public NbdServer? Server => _server;

    /// <summary>
    /// Raised with an export's id once it is gone and its clients disconnected (QEMU's <c>BLOCK_EXPORT_DELETED</c>),
    /// whichever way it was removed: <c>block-export-del</c>, <c>nbd-server-remove</c> or <c>nbd-server-stop</c>.
    /// </summary>
    public event Action<string>? ExportDeleted;

    /// <summary>The block exports, newest first as QEMU lists them (<c>query-block-exports</c>).</summary>
    public IReadOnlyList<BlockExportInfo> QueryExports()
    {
        lock (_exports)
            return [.. _exports.AsEnumerable().Reverse().Select(e => new BlockExportInfo(e.Export.Id, e.NodeName, e.ShuttingDown))];
    }

    /// <summary>
    /// Starts the server (<c>nbd-server-start</c>): <paramref name="arguments"/> holds <c>addr</c> (a flat
    /// SocketAddress with <c>--nbd-server</c>'s dotted keys, or 2.9's <c>{"type", "data"}</c> form over QMP),
    /// <c>max-connections</c> and <c>tls-creds</c>.
    /// </summary>
    /// <exception cref="BlockException">A server runs already, an argument is wrong, or the socket cannot be bound.</exception>
    public void Start(OptionsReader arguments)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        var addr = arguments.Object("addr") ?? throw arguments.Missing("addr");
        long maxConnections = arguments.Int("max-connections", 0, uint.MaxValue) ?? 0;
        string? tlsCreds = arguments.String("tls-creds");
        if (arguments.String("tls-authz") != null)
            throw new BlockException(Errno.ENOTSUP, "tls-authz is not supported: authorization objects are not built (issue 15)");
        arguments.Finish();

        // QEMU looks the credentials up before it reads the address.
        var tls = tlsCreds is null ? null : NbdServerTls.FromGraph(_graph, tlsCreds);
        string type = addr.RequiredString("type");
        var data = addr.Keyval ? addr : addr.Object("data") ?? throw addr.Missing("data");
        Socket socket;
        string? unixPath = null;
        switch (type)
        {
            case "unix":
                unixPath = data.RequiredString("path");
                if (!addr.Keyval)
                    data.Finish();
                addr.Finish();
                ThrowIfRunning();
                socket = NbdServer.BindUnix(unixPath);
                break;
            case "inet":
                string host = data.RequiredString("host");
                string port = data.RequiredString("port");
                if (!addr.Keyval)
                    data.Finish();
                addr.Finish();
                if (!int.TryParse(port, out int portNumber) || portNumber is < 0 or > 65535)
                    throw new BlockException(Errno.EINVAL, $"address resolution failed for {host}:{port}: Servname not supported for ai_socktype");
                ThrowIfRunning();
                socket = NbdServer.BindTcp(host, portNumber);
                break;
            default:
                throw new BlockOptionsException($"Parameter '{addr.FullName("type")}' does not accept value '{type}'");
        }
        var server = new NbdServer(new NbdServerOptions { MaxConnections = (int)Math.Min(maxConnections, int.MaxValue), Tls = tls });
        server.Listen(socket, unixPath);
        _server = server;
    }

    private void ThrowIfRunning()
    {
        if (_server != null)
            throw new BlockException(Errno.EBUSY, "NBD server already running");
    }

    /// <summary>
    /// Adds an export (<c>nbd-server-add</c>: <c>device</c>, <c>name</c>, <c>description</c>, <c>writable</c>; or
    /// <c>--export type=nbd</c>: <c>id</c>, <c>node-name</c>, <c>name</c>, <c>description</c>, <c>writable</c>).
    /// </summary>
    /// <exception cref="BlockException">No server runs, the node is missing, or the name is taken.</exception>
    public NbdExport AddExport(OptionsReader arguments)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        string? id = arguments.String("id");
        bool byNodeName = arguments.Has("node-name"); // block-export-add and --export name no device
        string node = arguments.Has("node-name") ? arguments.RequiredString("node-name") : arguments.RequiredString("device");
        string? name = arguments.String("name");
        string? description = arguments.String("description");
        bool writable = arguments.Bool("writable") ?? false;
        // block-export-add's members that an NBD export of ours has no use for, or does not do.
        arguments.Bool("fixed-iothread");
        if (arguments.String("iothread") is { } iothread)
            throw new BlockException(Errno.ENOTSUP, $"Cannot use iothread '{iothread}': block exports run without iothreads");
        if (arguments.Bool("writethrough") == true)
            throw new BlockException(Errno.ENOTSUP, "writethrough=on is not supported for exports (issue 15)");
        if (arguments.Bool("allocation-depth") == true)
            throw new BlockException(Errno.ENOTSUP, "allocation-depth=on is not supported: the qemu:allocation-depth context is not built (issue 15)");
        // nbd-server-add names one bitmap, block-export-add and --export a list.
        var bitmaps = arguments.Has("bitmap") ? [arguments.RequiredString("bitmap")] : arguments.StringList("bitmaps");
        arguments.Finish();
        var server = _server ?? throw new BlockException(Errno.EINVAL, "NBD server not running");
        name ??= node;
        id ??= name; // nbd-server-add names the block export after the NBD export, as QEMU does
        // QEMU's order of checks: export id, then node, then the NBD name.
        bool idTaken;
        lock (_exports)
            idTaken = _exports.Any(e => e.Export.Id == id);
        if (idTaken)
            throw new BlockException(Errno.EEXIST, $"Block export id '{id}' is already in use");
        if (_graph.FindNode(node) is null && _graph.FindBackend(node)?.Root is null)
            throw new BlockNotFoundException($"Cannot find device='{(byNodeName ? string.Empty : node)}' nor node-name='{node}'");
        if (server.FindExport(name) != null)
            throw new BlockException(Errno.EEXIST, $"NBD server already has export named '{name}'");
        var export = NbdExport.Create(_graph, node, name, writable, description, id, bitmaps);
        try
        {
            server.AddExport(export);
        }
        catch
        {
            _ = export.CloseAsync().AsTask();
            throw;
        }
        lock (_exports)
            _exports.Add(new BlockExportEntry(export, export.Backend.Root?.NodeName ?? node));
        return export;
    }

    /// <summary>
    /// Removes the block export <paramref name="id"/> (<c>block-export-del</c>, and <c>nbd-server-remove</c>, whose
    /// name QEMU 7.2 looks up as an export id). When the returned task completes the export has left the server; the
    /// task it gives completes, and <see cref="ExportDeleted"/> is raised, once its clients are gone (at once when it
    /// has none, and then everything completes synchronously).
    /// </summary>
    /// <remarks>
    /// A safe removal first waits for the clients that already hung up to finish (<c>NbdExport</c>'s settle): QEMU's
    /// single event loop has always seen such a hang-up by its next QMP command, while our per-client threads may not
    /// have on a loaded machine, which made "still in use" a flake right after a qemu-io session.
    /// </remarks>
    /// <exception cref="BlockException">No server runs, no such export, it is already shutting down, or it has
    /// clients and <paramref name="hard"/> is false (QEMU's <c>mode=safe</c>).</exception>
    public async ValueTask<Task> RemoveExportAsync(string id, bool hard)
    {
        var server = _server ?? throw new BlockException(Errno.EINVAL, "NBD server not running");
        if (!hard)
        {
            NbdExport? export;
            lock (_exports)
                export = _exports.Find(e => e.Export.Id == id)?.Export;
            if (export != null)
                await export.SettleHungUpConnectionsAsync().ConfigureAwait(false);
        }
        BlockExportEntry entry;
        lock (_exports)
        {
            entry = _exports.Find(e => e.Export.Id == id) ?? throw new BlockException(Errno.ENOENT, $"Export '{id}' is not found");
            if (entry.ShuttingDown)
                throw new BlockException(Errno.EINVAL, $"Export '{id}' is already shutting down");
            if (!hard && entry.Export.ConnectionCount > 0)
                throw new BlockException(Errno.EBUSY, $"export '{id}' still in use");
            entry.ShuttingDown = true;
        }
        return FinishRemovalAsync(server, entry);
    }

    private async Task FinishRemovalAsync(NbdServer server, BlockExportEntry entry)
    {
        try
        {
            await server.RemoveExportAsync(entry.Export.Name, hard: true).ConfigureAwait(false);
        }
        finally
        {
            Deleted(entry);
        }
    }

    private void Deleted(BlockExportEntry entry)
    {
        lock (_exports)
        {
            if (!_exports.Remove(entry))
                return;
        }
        ExportDeleted?.Invoke(entry.Export.Id);
    }

    /// <summary>Stops the server, disconnecting every client and removing every export (<c>nbd-server-stop</c>).</summary>
    /// <exception cref="BlockException">No server runs.</exception>
    public async ValueTask StopAsync()
    {
        var server = Interlocked.Exchange(ref _server, null) ?? throw new BlockException(Errno.EINVAL, "NBD server not running");
        await server.DisposeAsync().ConfigureAwait(false);
        BlockExportEntry[] remaining;
        lock (_exports)
            remaining = [.. _exports];
        foreach (var entry in remaining.Reverse())
            Deleted(entry);
    }

    /// <summary>An export as the block-export commands see it.</summary>
    private sealed class BlockExportEntry(NbdExport export, string nodeName)
    {
        public NbdExport Export { get; } = export;

        public string NodeName { get; } = nodeName;

        public bool ShuttingDown { get; set; }
    }

    /// <summary>Stops the server if one runs.</summary>
    public async ValueTask DisposeAsync()
    {
        var server = Interlocked.Exchange(ref _server, null);
        if (server != null)
            await server.DisposeAsync().ConfigureAwait(false);
    }
}
