using Block.Bitmaps;
using Block.Drivers;
using Block.Graph;

namespace Block.Nbd.Server;

/// <summary>
/// One export of an <see cref="NbdServer"/>: a name clients ask for, and the <see cref="BlockBackend"/> their
/// requests go through, so the backend's statistics, error policy, throttling and write threshold apply to them.
/// </summary>
public sealed class NbdExport
{
    private readonly bool _ownsBackend;
    private readonly List<NbdConnection> _connections = [];

    /// <summary>Exports an existing backend; the caller keeps it and closes it after the export is removed.</summary>
    /// <param name="name">The export name clients ask for (at most 4096 bytes of UTF-8).</param>
    /// <param name="backend">The backend requests go through.</param>
    /// <param name="writable">Whether clients may write; a read-only export answers writes with EPERM.</param>
    /// <param name="description">The free-form text <c>NBD_OPT_LIST</c> and <c>NBD_INFO_DESCRIPTION</c> show.</param>
    /// <param name="id">The block export id (QEMU's <c>--export id=…</c>); the name when omitted.</param>
    /// <param name="bitmaps">Dirty bitmaps offered as <c>qemu:dirty-bitmap:NAME</c> metadata contexts, in this order;
    /// each is looked up on the exported node, then down its backing chain and through filters, and is busy while
    /// exported.</param>
    /// <exception cref="BlockException">A name too long, a read-only backend exported writable, or a bitmap that is
    /// missing, inconsistent, busy, or enabled under a read-only export of a writable node (QEMU's messages).</exception>
    public NbdExport(string name, BlockBackend backend, bool writable, string? description = null, string? id = null, IReadOnlyList<string>? bitmaps = null)
        : this(name, backend, writable, description, id, bitmaps, ownsBackend: false)
    {
    }

    private NbdExport(string name, BlockBackend backend, bool writable, string? description, string? id, IReadOnlyList<string>? bitmaps, bool ownsBackend)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(backend);
        if (System.Text.Encoding.UTF8.GetByteCount(name) > Protocol.NbdProtocol.MaxString)
            throw new BlockException(Errno.EINVAL, $"export name '{name[..32]}…' too long");
        if (description != null && System.Text.Encoding.UTF8.GetByteCount(description) > Protocol.NbdProtocol.MaxString)
            throw new BlockException(Errno.EINVAL, "export description too long");
        if (writable && !backend.CanWrite)
            throw new BlockException(Errno.EPERM, "Cannot export a read-only backend as writable");
        Name = name;
        Id = id ?? name;
        Backend = backend;
        Writable = writable;
        Description = description;
        Bitmaps = FindBitmaps(backend, writable, bitmaps ?? []);
        foreach (var bitmap in Bitmaps)
            bitmap.Busy = true;
        _ownsBackend = ownsBackend;
    }

    private static DirtyBitmap[] FindBitmaps(BlockBackend backend, bool writable, IReadOnlyList<string> names)
    {
        var found = new DirtyBitmap[names.Count];
        for (int i = 0; i < names.Count; i++)
        {
            string name = names[i];
            DirtyBitmap? bitmap = null;
            var node = backend.Root;
            for (; node != null && bitmap is null; node = node.Driver.Kind == BlockDriverKind.Filter ? node.PrimaryChild?.Node : node.Backing?.Node)
                bitmap = node.FindDirtyBitmap(name);
            if (bitmap is null)
                throw new BlockException(Errno.ENOENT, $"Bitmap '{name}' is not found");
            if (bitmap.Busy || Array.IndexOf(found, bitmap) >= 0)
                throw new BlockException(Errno.EBUSY, $"Bitmap '{name}' is in use");
            if (bitmap.Inconsistent)
                throw new BlockException(Errno.EINVAL, $"Bitmap '{name}' is inconsistent");
            if (!writable && backend.Root is { ReadOnly: false } && bitmap.Enabled)
                throw new BlockException(Errno.EINVAL, $"Enabled bitmap '{name}' incompatible with readonly export");
            found[i] = bitmap;
        }
        return found;
    }

    /// <summary>
    /// Exports node <paramref name="nodeName"/> of <paramref name="graph"/> through a new anonymous backend that takes
    /// consistent read (and write when <paramref name="writable"/>) and shares everything, as QEMU's block exports
    /// do; the export closes that backend when it is removed.
    /// </summary>
    /// <exception cref="BlockException">The node does not exist, or is read-only and a writable export was asked for.</exception>
    public static NbdExport Create(BlockGraph graph, string nodeName, string? name, bool writable, string? description = null, string? id = null,
        IReadOnlyList<string>? bitmaps = null)
    {
        ArgumentNullException.ThrowIfNull(graph);
        // A drive's name exports the drive's own backend, as nbd-server-add device=… does in QEMU 2.8: its throttling,
        // statistics and error policy then apply to NBD clients.
        if (graph.FindNode(nodeName) is null && graph.FindBackend(nodeName) is { Root: { } driveRoot } drive)
        {
            if (writable && (driveRoot.ReadOnly || !drive.CanWrite))
                throw new BlockException(Errno.EPERM, "Cannot export read-only node as writable");
            return new NbdExport(name ?? nodeName, drive, writable, description, id, bitmaps, ownsBackend: false);
        }
        var node = graph.FindNode(nodeName)
            ?? graph.FindBackend(nodeName)?.Root
            ?? throw new BlockNotFoundException($"Cannot find device='{nodeName}' nor node-name='{nodeName}'");
        if (writable && node.ReadOnly)
            throw new BlockException(Errno.EPERM, "Cannot export read-only node as writable");
        var permissions = writable ? BlockPermissions.ConsistentRead | BlockPermissions.Write : BlockPermissions.ConsistentRead;
        var backend = graph.CreateBackend(node, new BlockBackendOptions { Permissions = permissions });
        try
        {
            return new NbdExport(name ?? nodeName, backend, writable, description, id, bitmaps, ownsBackend: true);
        }
        catch
        {
            _ = backend.DisposeAsync().AsTask();
            throw;
        }
    }

    /// <summary>The name clients ask for.</summary>
    public string Name { get; }

    /// <summary>The block export id.</summary>
    public string Id { get; }

    /// <summary>The backend requests go through.</summary>
    public BlockBackend Backend { get; }

    /// <summary>Whether clients may write.</summary>
    public bool Writable { get; }

    /// <summary>The description clients see, if any.</summary>
    public string? Description { get; }

    /// <summary>
    /// Whether clients are told that several connections may be used at once (<c>NBD_FLAG_CAN_MULTI_CONN</c>); null
    /// (the default) for QEMU 7.2's rule: whenever the server takes more than one client
    /// (<see cref="NbdServerOptions.MaxConnections"/> other than 1; qemu-nbd's <c>-e</c> above 1).
    /// </summary>
    /// <remarks>
    /// Safe for a writable export too, because every connection goes through the one backend: a flush on any
    /// connection flushes the node, so it covers writes that other connections saw completed.
    /// </remarks>
    public bool? MultiConnection { get; init; }

    /// <summary>The dirty bitmaps offered as <c>qemu:dirty-bitmap:NAME</c> contexts, in the order clients list them.</summary>
    public IReadOnlyList<DirtyBitmap> Bitmaps { get; }

    /// <summary>How many clients are connected to this export now.</summary>
    public int ConnectionCount
    {
        get
        {
            lock (_connections)
                return _connections.Count;
        }
    }

    internal void Attach(NbdConnection connection)
    {
        lock (_connections)
            _connections.Add(connection);
    }

    internal void Detach(NbdConnection connection)
    {
        lock (_connections)
            _connections.Remove(connection);
    }

    /// <summary>
    /// Waits for the connections whose client already hung up to finish, so that a safe removal made after a client
    /// left does not count it. QEMU's event loop has always seen such a hang-up by the time it runs the next QMP
    /// command; our per-client threads may not have, on a loaded machine.
    /// </summary>
    internal async ValueTask SettleHungUpConnectionsAsync()
    {
        NbdConnection[] connections;
        lock (_connections)
            connections = [.. _connections];
        foreach (var c in connections)
        {
            if (c.PeerClosed)
                await c.Completion.ConfigureAwait(false);
        }
    }

    /// <summary>Disconnects every client and closes the backend if the export created it.</summary>
    internal async ValueTask CloseAsync()
    {
        NbdConnection[] connections;
        lock (_connections)
            connections = [.. _connections];
        foreach (var c in connections)
            c.Abort();
        foreach (var c in connections)
            await c.Completion.ConfigureAwait(false);
        foreach (var bitmap in Bitmaps)
            bitmap.Busy = false;
        if (_ownsBackend)
            await Backend.DisposeAsync().ConfigureAwait(false);
    }
}
