using System.Text.Json.Nodes;
using Block.Drivers;
using Block.Drivers.Raw;
using Block.Events;
using Block.Io;
using Block.Options;
using Block.Qapi;

namespace Block.Graph;

/// <summary>
/// Owns nodes and backends, opens and closes them, keeps permissions consistent, drains, raises events, and
/// answers the schema's queries (<c>query-block</c>, <c>query-blockstats</c>, <c>query-named-block-nodes</c>).
/// </summary>
/// <remarks>
/// Every graph change happens here. Nodes are reference counted by their parents: a node that is neither held by a
/// parent nor added explicitly (<see cref="AddNodeAsync"/>, QMP's <c>blockdev-add</c>) is closed when its last
/// parent lets go. Permissions are recomputed top-down on every attach and detach; protocol nodes turn them into
/// QEMU-compatible file locks, so a change that another process's use forbids fails and is rolled back.
/// </remarks>
public sealed partial class BlockGraph : IAsyncDisposable
{
    private readonly object _lock = new();
    private readonly Dictionary<string, BlockNode> _nodes = new(StringComparer.Ordinal);
    private readonly List<BlockBackend> _backends = [];
    private readonly Lazy<ThreadsIoEngine> _threads;
    private readonly Lazy<IIoEngine> _ioUring;
    private readonly Func<IIoEngine> _ioUringFactory;
    private long _nodeCounter;

    /// <summary>Creates a graph.</summary>
    public BlockGraph(BlockGraphOptions? options = null)
    {
        options ??= new BlockGraphOptions();
        Drivers = options.Drivers ?? DriverRegistry.CreateDefault();
        Buffers = options.Buffers ?? AlignedBufferPool.Shared;
        DefaultAio = options.DefaultAio;
        ReferencePolicy = options.ReferencePolicy;
        Parser = new BlockdevOptionsParser(Drivers);
        int maxThreads = options.MaxIoThreads;
        _threads = new Lazy<ThreadsIoEngine>(() => new ThreadsIoEngine(maxThreads));
        _ioUringFactory = options.IoUringFactory ?? (() => new IoUringIoEngine());
        _ioUring = new Lazy<IIoEngine>(CreateIoUringEngine);
        Time = options.TimeProvider ?? TimeProvider.System;
        ThrottleGroups = new Throttle.ThrottleGroupRegistry(Time);
        Metrics.BlockMetrics.Track(this);
    }

    /// <summary>The clock of throttling and accounting (<see cref="BlockGraphOptions.TimeProvider"/>).</summary>
    public TimeProvider Time { get; }

    /// <summary>The throttle groups backends share (<c>block_set_io_throttle</c>, <c>--object throttle-group</c>).</summary>
    public Throttle.ThrottleGroupRegistry ThrottleGroups { get; }

    /// <summary>The drivers this graph opens nodes with.</summary>
    public DriverRegistry Drivers { get; }

    /// <summary>Parses options for this graph's drivers.</summary>
    public BlockdevOptionsParser Parser { get; }

    /// <summary>The buffer pool.</summary>
    public AlignedBufferPool Buffers { get; }

    /// <summary>The engine file nodes use by default.</summary>
    public BlockdevAioOptions DefaultAio { get; }

    /// <summary>Which files named inside images may be opened.</summary>
    public ImageReferencePolicy ReferencePolicy { get; }

    /// <summary>Secrets for encrypted images (QEMU's <c>secret</c> objects).</summary>
    public Secrets.SecretStore Secrets { get; } = new();

    /// <summary>TLS credentials for NBD clients and servers (QEMU's <c>tls-creds-x509</c> objects).</summary>
    public Secrets.TlsCredentialStore TlsCredentials { get; } = new();

    /// <summary>Raised for every event of the schema (write threshold, I/O error, corruption…).</summary>
    public event Action<BlockEvent>? EventRaised;

    /// <summary>Raised for warnings a QEMU tool would print to stderr (for example an O_DIRECT fallback).</summary>
    public event Action<string>? WarningRaised;

    /// <summary>
    /// Raised for diagnostics a QEMU tool prints to stderr as they are, with neither program name nor "warning:"
    /// (for example qcow2's "qcow2: Marking image as corrupt: …\n"). The text is exact, line ends included: QEMU
    /// ends some of them without one (the stale-bitmaps hint), and the next output then continues that line.
    /// </summary>
    public event Action<string>? MessagePrinted;

    /// <summary>
    /// Raised for errors a QEMU tool reports and carries on after (QEMU's <c>error_report</c>: the tool prints its
    /// name first), for example a failed resize during a repair.
    /// </summary>
    public event Action<string>? ErrorReported;

    /// <summary>All open nodes.</summary>
    public IReadOnlyList<BlockNode> Nodes
    {
        get
        {
            lock (_lock)
                return [.. _nodes.Values];
        }
    }

    /// <summary>All backends.</summary>
    public IReadOnlyList<BlockBackend> Backends
    {
        get
        {
            lock (_lock)
                return [.. _backends];
        }
    }

    /// <summary>The I/O engine for <paramref name="aio"/>.</summary>
    /// <remarks>
    /// <c>native</c> and <c>io_uring</c> both give the io_uring engine (QEMU's <c>native</c> is Linux AIO, which Block
    /// does not implement; io_uring does all it did). Where the kernel refuses io_uring (no such system call, a
    /// seccomp filter, <c>kernel.io_uring_disabled</c>) the graph warns once, naming the errno, and uses <c>threads</c>.
    /// </remarks>
    public IIoEngine GetEngine(BlockdevAioOptions aio) => aio switch
    {
        BlockdevAioOptions.Threads => _threads.Value,
        BlockdevAioOptions.Inline => InlineIoEngine.Instance,
        _ => _ioUring.Value,
    };

    private IIoEngine CreateIoUringEngine()
    {
        try
        {
            return _ioUringFactory();
        }
        catch (BlockException e)
        {
            Warn($"aio=io_uring is not available ({e.Message}); falling back to aio=threads");
            return _threads.Value;
        }
    }

    /// <summary>The node named <paramref name="nodeName"/>, or null.</summary>
    public BlockNode? FindNode(string nodeName)
    {
        lock (_lock)
            return _nodes.GetValueOrDefault(nodeName);
    }

    /// <summary>The backend named <paramref name="name"/>, or null.</summary>
    public BlockBackend? FindBackend(string name)
    {
        lock (_lock)
            return _backends.FirstOrDefault(b => b.Name == name && name.Length > 0);
    }

    /// <summary>
    /// Opens a node tree from options and keeps its root until <see cref="DeleteNodeAsync"/> (QMP <c>blockdev-add</c>).
    /// </summary>
    public async ValueTask<BlockNode> AddNodeAsync(BlockdevOptions options, CancellationToken cancellationToken = default)
    {
        if (options.NodeName is null)
            throw new BlockOptionsException("'node-name' must be specified for the root node");
        var node = await OpenNodeAsync(options, cancellationToken).ConfigureAwait(false);
        node.IsMonitorOwned = true;
        return node;
    }

    /// <summary>
    /// Closes a node added with <see cref="AddNodeAsync"/> (QMP <c>x-blockdev-del</c>, QEMU 2.9's <c>blockdev-del</c>),
    /// with QEMU 7.2's checks and messages, in its order.
    /// </summary>
    /// <exception cref="BlockNotFoundException">No such node.</exception>
    /// <exception cref="BlockException">A device uses the node ("Node x is in use"), an overlay uses it as its backing
    /// node, it was not added with <see cref="AddNodeAsync"/>, or another node uses it ("Block device x is in use").</exception>
    public async ValueTask DeleteNodeAsync(string nodeName)
    {
        ArgumentNullException.ThrowIfNull(nodeName);
        var node = FindNode(nodeName) ?? throw new BlockNotFoundException($"Failed to find node with node-name='{nodeName}'");
        if (node.Parents.Any(p => p.Parent is BlockBackend))
            throw new BlockException(Errno.EBUSY, $"Node {nodeName} is in use");
        ThrowIfUsedAsBacking(node);
        if (!node.IsMonitorOwned)
            throw new BlockException(Errno.EINVAL, $"Node {nodeName} is not owned by the monitor");
        if (node.ParentCount != 0 || node.PinCount != 0)
            throw new BlockException(Errno.EBUSY, $"Block device {nodeName} is in use");
        node.IsMonitorOwned = false;
        await ReleaseNodeAsync(node).ConfigureAwait(false);
    }

    /// <summary>Attaches a backend to <paramref name="root"/>, taking its permissions.</summary>
    public BlockBackend CreateBackend(BlockNode root, BlockBackendOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(root);
        options ??= new BlockBackendOptions();
        CheckBackendName(options.Name);
        var backend = new BlockBackend(this, options);
        var perm = options.Permissions ?? (root.ReadOnly ? BlockPermissions.ConsistentRead : BlockPermissions.ConsistentRead | BlockPermissions.Write);
        var edge = AttachChild(backend, "root", root, ChildRole.Image, (perm, options.SharedPermissions));
        backend.SetRoot(edge);
        AddBackend(backend);
        return backend;
    }

    /// <summary>
    /// Creates a backend with no medium (QEMU's <c>-drive if=none,id=x</c> without a file), for a removable device to
    /// receive one later (<see cref="InsertMediumAsync(string?, string?, string)"/>, <see cref="ChangeMediumAsync"/>).
    /// </summary>
    /// <param name="options">The backend's options (<see cref="ImageOpenOptions.Backend"/>), and how media inserted by
    /// <see cref="ChangeMediumAsync"/> are opened (read-only, cache, aio, discard, detect-zeroes).</param>
    /// <exception cref="BlockException">The name is taken by a backend or a node.</exception>
    public BlockBackend CreateEmptyBackend(ImageOpenOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        CheckBackendName(options.Backend.Name);
        var backend = new BlockBackend(this, options.Backend) { MediumOptions = MediumOptionsOf(options) };
        AddBackend(backend);
        return backend;
    }

    private void CheckBackendName(string name)
    {
        if (name.Length == 0)
            return;
        if (FindBackend(name) != null)
            throw new BlockException(Errno.EEXIST, $"Device with id '{name}' already exists");
        if (FindNode(name) != null)
            throw new BlockException(Errno.EEXIST, $"Device name '{name}' conflicts with an existing node name");
    }

    private void AddBackend(BlockBackend backend)
    {
        if (backend.Options.Throttle is { IsEnabled: true } limits)
            backend.SetIoThrottle(limits, backend.Options.ThrottleGroup);
        lock (_lock)
            _backends.Add(backend);
    }

    /// <summary>What a drive remembers of how its medium was opened: the settings, not the image or its format.</summary>
    private static ImageOpenOptions MediumOptionsOf(ImageOpenOptions options) => new()
    {
        ReadOnly = options.ReadOnly,
        CacheDirect = options.CacheDirect,
        NoFlush = options.NoFlush,
        Aio = options.Aio,
        Discard = options.Discard,
        DetectZeroes = options.DetectZeroes,
    };

    /// <summary>Opens a node tree from typed options and attaches a backend to its root.</summary>
    public async ValueTask<BlockBackend> OpenBackendAsync(BlockdevOptions options, BlockBackendOptions? backend = null, CancellationToken cancellationToken = default)
    {
        var node = await OpenNodeAsync(options, cancellationToken).ConfigureAwait(false);
        try
        {
            return CreateBackend(node, backend);
        }
        catch
        {
            await ReleaseNodeAsync(node).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// Opens an image by file name (or <c>json:{…}</c> name) as qemu-img and qemu-io do — protocol node, format node
    /// (probed if allowed), backend — and returns the backend.
    /// </summary>
    public ValueTask<BlockBackend> OpenImageAsync(string filename, ImageOpenOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(filename);
        JsonObject tree = filename.StartsWith("json:", StringComparison.Ordinal)
            ? BlockdevOptionsParser.JsonFilenameObject(filename)
            : new JsonObject { ["filename"] = filename };
        return OpenImageAsync(tree, options, cancellationToken);
    }

    /// <summary>
    /// Opens an image from an options tree in QEMU's <c>--image-opts</c> form (see
    /// <see cref="OpenImageNodeAsync(JsonObject, ImageOpenOptions, CancellationToken)"/>) and returns its backend.
    /// </summary>
    public async ValueTask<BlockBackend> OpenImageAsync(JsonObject tree, ImageOpenOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(tree);
        options ??= new ImageOpenOptions();
        var node = await OpenImageNodeAsync(tree, options, cancellationToken).ConfigureAwait(false);
        try
        {
            var backendOptions = options.Backend;
            if (backendOptions.Permissions is null)
            {
                var perm = options.ReadOnly ? BlockPermissions.ConsistentRead : BlockPermissions.ConsistentRead | BlockPermissions.Write;
                backendOptions = backendOptions with { Permissions = perm };
            }
            var backend = CreateBackend(node, backendOptions);
            backend.MediumOptions = MediumOptionsOf(options);
            return backend;
        }
        catch
        {
            await ReleaseNodeAsync(node).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Opens an image by file name as a node without a backend (the caller attaches it).</summary>
    public ValueTask<BlockNode> OpenImageNodeAsync(string filename, ImageOpenOptions options, CancellationToken cancellationToken = default)
    {
        JsonObject tree = filename.StartsWith("json:", StringComparison.Ordinal)
            ? BlockdevOptionsParser.JsonFilenameObject(filename)
            : new JsonObject { ["filename"] = filename };
        return OpenImageNodeAsync(tree, options, cancellationToken);
    }

    /// <summary>
    /// Opens an image from an options tree in QEMU's <c>--image-opts</c> form (<c>{"driver": "raw", "file":
    /// {"filename": "x"}}</c>, leaves may be keyval strings): a format without a <c>file.driver</c> gets the protocol
    /// its file name implies, a tree without a driver is probed, and a protocol driver at the top is opened as the
    /// image itself.
    /// </summary>
    public async ValueTask<BlockNode> OpenImageNodeAsync(JsonObject tree, ImageOpenOptions options, CancellationToken cancellationToken = default)
    {
        if (options.ExtraOptions != null)
            Merge(tree, (JsonObject)options.ExtraOptions.DeepClone());

        string? driverName = (tree["driver"] as JsonValue)?.GetValue<string>();
        if (driverName is null && options.Format != null && Drivers.Find(options.Format) is { Kind: BlockDriverKind.Protocol } named)
        {
            // "-f file": the protocol node is the image.
            driverName = named.Name;
            tree["driver"] = driverName;
        }
        var driver = driverName is null ? null : Drivers.Get(driverName);
        if (driver != null && options.Format != null && driver.Name != options.Format)
            throw new BlockOptionsException($"Cannot use format '{options.Format}' with json filename driver '{driver.Name}'");

        JsonObject formatTree;
        JsonNode? protocolTree;
        bool fromFileMember = false;
        if (driver is { Kind: BlockDriverKind.Protocol })
        {
            // Options that name a protocol driver open that node as the image, with no format layer above it.
            ApplyCommon(tree, options);
            if (options.Aio is { } protocolAio && !tree.ContainsKey("aio") && driver.Name is "file" or "host_device")
                tree["aio"] = QapiEnum<BlockdevAioOptions>.ToWire(protocolAio);
            return await OpenNodeAsync(Parser.Parse(new OptionsReader(tree, keyval: true)), cancellationToken).ConfigureAwait(false);
        }
        else if (driver != null && !driver.Name.Equals("raw", StringComparison.Ordinal) && driver.Kind != BlockDriverKind.Format)
        {
            // A filter (blkdebug…) names its own children: open the tree as given.
            ApplyCommon(tree, options);
            return await OpenNodeAsync(Parser.Parse(new OptionsReader(tree, keyval: true)), cancellationToken).ConfigureAwait(false);
        }
        else
        {
            formatTree = tree;
            protocolTree = tree["file"];
            fromFileMember = protocolTree != null;
            tree.Remove("file");
            string? plainName = (tree["filename"] as JsonValue)?.GetValue<string>();
            tree.Remove("filename");
            if (protocolTree is null or JsonObject)
            {
                var p = (JsonObject?)protocolTree ?? new JsonObject();
                if (plainName != null && !p.ContainsKey("filename"))
                    p["filename"] = plainName;
                protocolTree = p;
            }
        }
        driver ??= options.Format is null ? null : Drivers.Get(options.Format);

        BlockNode protocol;
        if (protocolTree is JsonValue reference)
        {
            string name = reference.GetValue<string>();
            protocol = LookupNode(name, name);
        }
        else
        {
            var p = (JsonObject)protocolTree!;
            if (!p.ContainsKey("driver"))
            {
                string? name = (p["filename"] as JsonValue)?.GetValue<string>()
                    ?? throw new BlockOptionsException("The 'file' block driver requires a file name");
                p["driver"] = Drivers.ProtocolFor(name).Name;
            }
            ApplyCommon(p, options);
            // As in QEMU, the file under a format takes discards: the format node's own policy (and qcow2's
            // pass-discard-* options) decide which reach it.
            if (!p.ContainsKey("discard"))
                p["discard"] = "unmap";
            if (options.Aio is { } aio && !p.ContainsKey("aio") && (p["driver"] as JsonValue)?.GetValue<string>() is "file" or "host_device")
                p["aio"] = QapiEnum<BlockdevAioOptions>.ToWire(aio);
            var protocolOptions = Parser.Parse(new OptionsReader(p, keyval: true, prefix: fromFileMember ? "file" : string.Empty));
            if (protocolOptions.Driver is "file" or "host_device" && protocolOptions is Block.Drivers.File.BlockdevOptionsFile f)
                protocolOptions = f with { Filename = Block.Drivers.File.FileDriver.StripPrefix(f.Filename) };
            protocol = await OpenNodeAsync(protocolOptions, cancellationToken).ConfigureAwait(false);
        }

        try
        {
            bool probed = false;
            if (driver is null)
            {
                if (!options.AllowProbing)
                    throw new BlockOptionsException("Image format not specified and probing is not allowed");
                driver = await ProbeAsync(protocol, cancellationToken).ConfigureAwait(false);
                probed = true;
            }
            formatTree["driver"] = driver.Name;
            formatTree["file"] = protocol.NodeName;
            if (options.NoBacking && driver.SupportsBacking && !formatTree.ContainsKey("backing"))
                formatTree["backing"] = null;
            ApplyCommon(formatTree, options);
            var formatOptions = Parser.Parse(new OptionsReader(formatTree, keyval: true));
            if (probed && formatOptions is BlockdevOptionsRaw raw)
                formatOptions = raw with { Probed = true };
            if (options.NoIo)
                formatOptions = formatOptions with { NoIo = true };
            if (options.KeyLater)
                formatOptions = formatOptions with { KeyLater = true };
            if (options.ForCheck)
                formatOptions = formatOptions with { ForCheck = true };
            return await OpenNodeAsync(formatOptions, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await ReleaseNodeAsync(protocol).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Guesses the format of <paramref name="protocol"/>'s content from its first 512 bytes.</summary>
    /// <remarks>512 bytes is QEMU's <c>BLOCK_PROBE_BUF_SIZE</c>: the same read reaches the protocol (an http node's
    /// first Range header is the same as QEMU's), and no probe sees more than QEMU's does.</remarks>
    public async ValueTask<BlockDriver> ProbeAsync(BlockNode protocol, CancellationToken cancellationToken = default)
    {
        const int probeBytes = 512;
        var buffer = Buffers.Rent(probeBytes);
        try
        {
            int n = (int)Math.Min(probeBytes, protocol.Length);
            var memory = buffer.Memory[..n];
            if (n > 0)
            {
                try
                {
                    await protocol.ReadAsync(0, memory).ConfigureAwait(false);
                }
                catch (BlockException e) when (e is not BlockOptionsException)
                {
                    throw new BlockException(e.Errno, $"Could not read image for determining its format: {ErrnoText.Describe(e.Errno)}", e);
                }
            }
            cancellationToken.ThrowIfCancellationRequested();
            // An empty file is raw without probing, as in QEMU: weak probes (cloop's script prefix, dmg's name) would claim it.
            return n == 0 ? Drivers.Get("raw") : Drivers.ProbeFormat(memory.Span, protocol.Filename);
        }
        finally
        {
            buffer.Return(clear: false);
        }
    }

    /// <summary>Creates an image (<c>qemu-img create -f FORMAT FILE -o …</c>).</summary>
    /// <exception cref="BlockOptionsException">An option the driver does not take, or a bad value.</exception>
    public async ValueTask CreateImageAsync(string format, string filename, IReadOnlyDictionary<string, string> options, CancellationToken cancellationToken = default)
    {
        var driver = Drivers.Find(format) ?? throw new BlockOptionsException($"Unknown file format '{format}'");
        if (!driver.CanCreate)
            throw new BlockException(Errno.ENOTSUP, $"Format driver '{format}' does not support image creation");
        var known = CreateOptionsFor(driver, filename).Select(o => o.Name).ToHashSet(StringComparer.Ordinal);
        foreach (var key in options.Keys)
        {
            if (!known.Contains(key))
                throw new BlockOptionsException($"Invalid parameter '{key}'");
        }
        await driver.CreateAsync(new ImageCreateRequest(this, filename, options), cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// The <c>-o</c> options creating an image of <paramref name="format"/> at <paramref name="filename"/> takes: the
    /// format's own, then those of the protocol the file name selects (format drivers only; a protocol's own list
    /// otherwise). Without a file name, only the format's own.
    /// </summary>
    public IReadOnlyList<CreateOptionDescriptor> CreateOptionsFor(BlockDriver format, string? filename)
    {
        var list = new List<CreateOptionDescriptor>(format.CreateOptions);
        if (filename != null && format.Kind == BlockDriverKind.Format)
        {
            foreach (var o in Drivers.ProtocolFor(filename).CreateOptions)
            {
                if (!list.Any(x => x.Name == o.Name))
                    list.Add(o);
            }
        }
        return list;
    }

    /// <summary>Quiesces every backend and waits until no request is in flight; disposing the result resumes them.</summary>
    /// <remarks>Drained sections nest: backends resume when the outermost one ends. Jobs pause too, and the section
    /// begins once each is parked at a pause point, so no job I/O runs beside a graph change.</remarks>
    public ValueTask<IAsyncDisposable> BeginDrainAsync() => BeginDrainAsync(null);

    /// <summary>
    /// A drained section around <paramref name="node"/> (QEMU's <c>bdrv_drained_begin</c> on one node): as
    /// <see cref="BeginDrainAsync()"/>, but it pauses only the jobs that hold the node or a node above it (its parents,
    /// theirs, and so on), which are the jobs QEMU's drain reaches; other jobs run on untouched.
    /// </summary>
    /// <remarks>A pause ends a mirror's rate-limit sleep (as in QEMU 7.2, which then issues its next burst at once), so
    /// pausing a job that QEMU's drain does not reach would show: qemu-storage-daemon 7.2 leaves a mirror's progress
    /// alone across a block_resize of an unrelated node.</remarks>
    /// <param name="node">The node drained; null drains the whole graph (QEMU's <c>bdrv_drain_all_begin</c>).</param>
    public async ValueTask<IAsyncDisposable> BeginDrainAsync(BlockNode? node)
    {
        var backends = Backends;
        foreach (var b in backends)
            b.BeginQuiesce();
        var jobs = PauseJobsForDrain(node);
        foreach (var b in backends)
            await b.WaitIdleAsync().ConfigureAwait(false);
        foreach (var j in jobs)
            await j.WaitQuiescentAsync().ConfigureAwait(false);
        foreach (var n in Nodes)
            await n.WaitIdleAsync().ConfigureAwait(false);
        return new DrainedSection(backends, jobs);
    }

    /// <summary>QMP <c>query-block</c>: every named backend.</summary>
    public IReadOnlyList<BlockInfo> QueryBlock() => [.. Backends.Where(b => b.Name.Length > 0).Select(b => b.GetInfo())];

    /// <summary>QMP <c>query-blockstats</c>: one entry per backend, or with <paramref name="queryNodes"/> one per node.</summary>
    public IReadOnlyList<BlockStats> QueryBlockStats(bool queryNodes = false) => queryNodes
        ? [.. Nodes.Select(n => n.GetStats(withBacking: false))]
        : [.. Backends.Where(b => b.Name.Length > 0).Select(b => b.GetStats())];

    /// <summary>QMP <c>query-named-block-nodes</c>: every node.</summary>
    public IReadOnlyList<BlockDeviceInfo> QueryNamedBlockNodes() => [.. Nodes.Select(n => n.GetDeviceInfo())];

    /// <summary>Closes every backend and node.</summary>
    public async ValueTask DisposeAsync()
    {
        Metrics.BlockMetrics.Untrack(this);
        await CancelJobsAsync().ConfigureAwait(false);
        foreach (var b in Backends)
            await RemoveBackendAsync(b).ConfigureAwait(false);
        foreach (var n in Nodes.Where(n => n.IsMonitorOwned))
        {
            n.IsMonitorOwned = false;
            await ReleaseNodeAsync(n).ConfigureAwait(false);
        }
        if (_ioUring.IsValueCreated && _ioUring.Value is IDisposable ioUring and not ThreadsIoEngine)
            ioUring.Dispose();
        if (_threads.IsValueCreated)
            _threads.Value.Dispose();
    }

    /// <summary>Delivers <paramref name="e"/> to <see cref="EventRaised"/> handlers (drivers raise the schema's events here).</summary>
    public void RaiseEvent(BlockEvent e) => EventRaised?.Invoke(e);

    /// <summary>Reports a warning a QEMU tool would print to stderr.</summary>
    public void Warn(string message) => WarningRaised?.Invoke(message);

    /// <summary>Reports a diagnostic a QEMU tool would print to stderr exactly as it is, line end included (see <see cref="MessagePrinted"/>).</summary>
    public void Print(string message) => MessagePrinted?.Invoke(message);

    /// <summary>Reports an error a QEMU tool would print with its name and carry on after (see <see cref="ErrorReported"/>).</summary>
    public void ReportError(string message) => ErrorReported?.Invoke(message);

    internal void OnNodeResized(BlockNode node)
    {
        foreach (var parent in node.Parents)
        {
            if (parent.Parent is BlockNode p && p.IsOpen)
                p.RefreshLimits();
        }
    }

    /// <summary>Opens one node (and, through its driver, its children) from typed options.</summary>
    internal async ValueTask<BlockNode> OpenNodeAsync(BlockdevOptions options, CancellationToken cancellationToken)
    {
        var driver = Drivers.Get(options.Driver);
        string name;
        bool generated = options.NodeName is null;
        lock (_lock)
        {
            name = options.NodeName ?? GenerateNodeName();
            if (!generated && _backends.Any(b => b.Name == name))
                throw new BlockException(Errno.EEXIST, $"node-name={name} is conflicting with a device id");
            if (_nodes.ContainsKey(name))
                throw new BlockException(Errno.EEXIST, $"Duplicate nodes with node-name='{name}'");
        }
        var node = new BlockNode(this, driver, options, name, generated);
        var context = new NodeOpenContext(this, node);
        NodeDriver impl;
        try
        {
            impl = await driver.OpenAsync(context, cancellationToken).ConfigureAwait(false);
        }
        catch
        {
            await DetachChildrenAsync(node).ConfigureAwait(false);
            throw;
        }

        node.AttachDriver(impl);
        try
        {
            lock (_lock)
            {
                if (_nodes.ContainsKey(name))
                    throw new BlockException(Errno.EEXIST, $"Duplicate nodes with node-name='{name}'");
                _nodes.Add(name, node);
            }
            RefreshPermissions(node);
        }
        catch
        {
            await CloseNodeAsync(node).ConfigureAwait(false);
            throw;
        }
        return node;
    }

    /// <summary>Attaches <paramref name="child"/> under <paramref name="parent"/> and applies the resulting permissions.</summary>
    internal BlockChild AttachChild(IBlockParent parent, string name, BlockNode child, ChildRole role,
        (BlockPermissions Permissions, BlockPermissions Shared)? permissions = null)
    {
        var edge = new BlockChild(parent, name, child, role);
        if (permissions is { } p)
        {
            edge.Permissions = p.Permissions;
            edge.SharedPermissions = p.Shared;
        }
        else if (parent is BlockNode parentNode)
        {
            var computed = parentNode.IsOpen
                ? parentNode.Impl.GetChildPermissions(edge, parentNode.Permissions, parentNode.SharedPermissions)
                : NodeDriver.DefaultChildPermissions(parentNode, role, parentNode.Permissions, parentNode.SharedPermissions);
            edge.Permissions = computed.Permissions;
            edge.SharedPermissions = computed.Shared;
        }
        child.AddParentEdge(edge);
        try
        {
            RefreshPermissions(child);
        }
        catch
        {
            child.RemoveParentEdge(edge);
            throw;
        }
        if (parent is BlockNode pn)
            pn.AddChildEdge(edge);
        return edge;
    }

    /// <summary>Changes what an edge holds and shares, rolling back if the result conflicts.</summary>
    internal void UpdateEdgePermissions(BlockChild edge, BlockPermissions permissions, BlockPermissions shared)
    {
        var (oldPerm, oldShared) = (edge.Permissions, edge.SharedPermissions);
        edge.Permissions = permissions;
        edge.SharedPermissions = shared;
        try
        {
            RefreshPermissions(edge.Node);
        }
        catch
        {
            edge.Permissions = oldPerm;
            edge.SharedPermissions = oldShared;
            throw;
        }
    }

    /// <summary>
    /// Recomputes the cumulative permissions of <paramref name="node"/> from its parents, checks them against each
    /// other and against the node's read-only state, applies them (file locks), and recurses into the children.
    /// On any failure every change is undone.
    /// </summary>
    internal void RefreshPermissions(BlockNode node)
    {
        var undo = new List<Action>();
        try
        {
            Apply(node, undo);
        }
        catch
        {
            for (int i = undo.Count - 1; i >= 0; i--)
            {
                try
                {
                    undo[i]();
                }
                catch (BlockException)
                {
                    // Restoring permissions that were held before cannot conflict; ignore the impossible.
                }
            }
            throw;
        }
    }

    private void Apply(BlockNode node, List<Action> undo)
    {
        var parents = node.Parents;
        var perm = BlockPermissions.None;
        var shared = BlockPermissions.All;
        foreach (var p in parents)
        {
            perm |= p.Permissions;
            shared &= p.SharedPermissions;
        }
        // QEMU keeps the newest parent first and reports the first pair that conflicts in that order.
        for (int i = parents.Count - 1; i >= 0; i--)
        {
            var a = parents[i];
            for (int j = parents.Count - 1; j >= 0; j--)
            {
                var b = parents[j];
                if (i == j)
                    continue;
                var denied = b.Permissions & ~a.SharedPermissions;
                if (denied != 0)
                {
                    throw new BlockException(Errno.EPERM,
                        $"Permission conflict on node '{node.NodeName}': permissions '{BlockPermissionNames.Describe(denied)}' are both required by " +
                        $"{b.Parent.ParentDescription} (uses node '{node.NodeName}' as '{b.Name}' child) and unshared by " +
                        $"{a.Parent.ParentDescription} (uses node '{node.NodeName}' as '{a.Name}' child).");
                }
            }
        }
        // As in QEMU, only writes need a writable node: a read-only node may be resized (the driver then refuses).
        if (node.ReadOnly && (perm & (BlockPermissions.Write | BlockPermissions.WriteUnchanged)) != 0)
            throw new BlockException(Errno.EPERM, "Block node is read-only");

        if (!node.IsOpen)
        {
            node.Permissions = perm;
            node.SharedPermissions = shared;
            return;
        }

        var (oldPerm, oldShared) = (node.Permissions, node.SharedPermissions);
        node.Impl.SetPermissions(perm, shared);
        node.Permissions = perm;
        node.SharedPermissions = shared;
        undo.Add(() =>
        {
            node.Impl.SetPermissions(oldPerm, oldShared);
            node.Permissions = oldPerm;
            node.SharedPermissions = oldShared;
        });

        foreach (var child in node.Children)
        {
            var (cp, cs) = node.Impl.GetChildPermissions(child, perm, shared);
            var (op, os) = (child.Permissions, child.SharedPermissions);
            child.Permissions = cp;
            child.SharedPermissions = cs;
            undo.Add(() =>
            {
                child.Permissions = op;
                child.SharedPermissions = os;
            });
            Apply(child.Node, undo);
        }
    }

    /// <summary>Closes <paramref name="node"/> if nothing holds it any more (no parent, not added explicitly).</summary>
    public async ValueTask ReleaseNodeAsync(BlockNode node)
    {
        if (node.ParentCount == 0 && !node.IsMonitorOwned && node.PinCount == 0)
            await CloseNodeAsync(node).ConfigureAwait(false);
    }

    internal async ValueTask RemoveBackendAsync(BlockBackend backend)
    {
        lock (_lock)
        {
            if (!_backends.Remove(backend))
                return;
        }
        // Leaves its throttle group (queued requests pass), so a group made for it goes with it.
        backend.SetIoThrottle(Throttle.ThrottleConfig.Unlimited);
        var edge = backend.RootChild;
        backend.SetRoot(null);
        if (edge != null)
            await DetachAsync(edge).ConfigureAwait(false);
    }

    private async ValueTask DetachAsync(BlockChild edge)
    {
        var child = edge.Node;
        child.RemoveParentEdge(edge);
        if (edge.Parent is BlockNode parent)
            parent.RemoveChildEdge(edge);
        if (child.IsOpen)
        {
            try
            {
                RefreshPermissions(child);
            }
            catch (BlockException)
            {
                // Dropping a user can only relax permissions; a failure here would be a lock release error.
            }
        }
        await ReleaseNodeAsync(child).ConfigureAwait(false);
    }

    private async ValueTask CloseNodeAsync(BlockNode node)
    {
        await node.WaitIdleAsync().ConfigureAwait(false);
        lock (_lock)
        {
            if (_nodes.TryGetValue(node.NodeName, out var existing) && ReferenceEquals(existing, node))
                _nodes.Remove(node.NodeName);
        }
        if (node.IsOpen)
        {
            var impl = node.Impl;
            try
            {
                await impl.DisposeAsync().ConfigureAwait(false);
            }
            finally
            {
                node.DetachDriver();
                await DetachChildrenAsync(node).ConfigureAwait(false);
            }
        }
        else
        {
            await DetachChildrenAsync(node).ConfigureAwait(false);
        }
    }

    private async ValueTask DetachChildrenAsync(BlockNode node)
    {
        foreach (var child in node.Children)
            await DetachAsync(child).ConfigureAwait(false);
    }

    private string GenerateNodeName()
    {
        long n = _nodeCounter++;
        return $"#block{n}{Random.Shared.Next(100):D2}";
    }

    private static void Merge(JsonObject target, JsonObject source)
    {
        foreach (var (key, value) in source.ToList())
        {
            source.Remove(key);
            if (value is JsonObject sub && target[key] is JsonObject existing)
                Merge(existing, sub);
            else
                target[key] = value;
        }
    }

    private static void ApplyCommon(JsonObject tree, ImageOpenOptions options)
    {
        if (options.ReadOnly && !tree.ContainsKey("read-only"))
            tree["read-only"] = "on";
        if (options.ForceShare && !tree.ContainsKey("force-share"))
            tree["force-share"] = "on";
        if (options.Discard == BlockdevDiscardOptions.Unmap && !tree.ContainsKey("discard"))
            tree["discard"] = "unmap";
        if (options.DetectZeroes != BlockdevDetectZeroesOptions.Off && !tree.ContainsKey("detect-zeroes"))
            tree["detect-zeroes"] = QapiEnum<BlockdevDetectZeroesOptions>.ToWire(options.DetectZeroes);
        if (options.CacheDirect || options.NoFlush)
        {
            var cache = tree["cache"] as JsonObject ?? new JsonObject();
            if (options.CacheDirect && !cache.ContainsKey("direct"))
                cache["direct"] = "on";
            if (options.NoFlush && !cache.ContainsKey("no-flush"))
                cache["no-flush"] = "on";
            tree["cache"] = cache;
        }
    }

    private sealed class DrainedSection(IReadOnlyList<BlockBackend> backends, Jobs.BlockJob[] jobs) : IAsyncDisposable
    {
        private int _disposed;

        public ValueTask DisposeAsync()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                foreach (var j in jobs)
                    j.ResumeInternal();
                foreach (var b in backends)
                    b.EndQuiesce();
            }
            return default;
        }
    }
}
