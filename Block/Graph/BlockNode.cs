using Block.Drivers;
using Block.Options;
using Block.Qapi;

namespace Block.Graph;

/// <summary>
/// One node of the block graph (QEMU's <c>BlockDriverState</c>): a driver instance with its options, children,
/// parents, limits and statistics, and the generic request path every request to it goes through.
/// </summary>
/// <remarks>
/// The public I/O methods (in <c>BlockNode.Requests.cs</c>) are thread-safe and may be called concurrently from
/// any number of threads. Nodes are created by <see cref="BlockGraph"/>; a node without parents and not added
/// explicitly is closed when its last parent lets go of it.
/// </remarks>
public sealed partial class BlockNode : IBlockParent
{
    private readonly List<BlockChild> _children = [];
    private readonly List<BlockChild> _parents = [];
    private NodeDriver? _impl;

    internal BlockNode(BlockGraph graph, BlockDriver driver, BlockdevOptions options, string nodeName, bool generatedName)
    {
        Graph = graph;
        Driver = driver;
        NodeName = nodeName;
        HasGeneratedName = generatedName;
        Options = options;
        ApplyOptions(options);
    }

    /// <summary>The graph this node belongs to.</summary>
    public BlockGraph Graph { get; }

    /// <summary>The node name (user-given, or generated as <c>#blockNNN</c>).</summary>
    public string NodeName { get; }

    /// <summary>True if the name was generated.</summary>
    public bool HasGeneratedName { get; }

    /// <summary>The driver.</summary>
    public BlockDriver Driver { get; }

    /// <summary>The driver's QAPI name.</summary>
    public string DriverName => Driver.Name;

    /// <summary>The options the node was opened with (after inheritance from its parent).</summary>
    public BlockdevOptions Options { get; private set; }

    /// <summary>The driver's per-node state.</summary>
    public NodeDriver Impl => _impl ?? throw new InvalidOperationException($"Node '{NodeName}' is not open");

    /// <summary>True once the driver has opened the node and until it is closed.</summary>
    public bool IsOpen => _impl != null;

    /// <summary>True if the node refuses writes.</summary>
    public bool ReadOnly { get; private set; }

    /// <summary>True if the node's file bypasses the page cache (O_DIRECT) — as requested; see the file driver for the effective state.</summary>
    public bool CacheDirect { get; internal set; }

    /// <summary>True if flushes to disk are skipped.</summary>
    public bool CacheNoFlush { get; private set; }

    /// <summary>Whether discard requests are passed down.</summary>
    public BlockdevDiscardOptions Discard { get; private set; }

    /// <summary>Zero detection on writes.</summary>
    public BlockdevDetectZeroesOptions DetectZeroes { get; private set; }

    /// <summary>True if every permission is shared with other users (read-only inspection with <c>-U</c>).</summary>
    public bool ForceShare { get; private set; }

    /// <summary>The request shapes the driver accepts.</summary>
    public BlockLimits Limits { get; private set; } = new();

    /// <summary>Child edges, in the order they were attached.</summary>
    public IReadOnlyList<BlockChild> Children
    {
        get
        {
            lock (_children)
                return [.. _children];
        }
    }

    /// <summary>Edges from parents to this node.</summary>
    public IReadOnlyList<BlockChild> Parents
    {
        get
        {
            lock (_parents)
                return [.. _parents];
        }
    }

    /// <summary>The primary child (<c>file</c> of a format, the filtered child of a filter), or null.</summary>
    public BlockChild? PrimaryChild => FindChild(c => (c.Role & (ChildRole.Primary | ChildRole.Filtered)) != 0);

    /// <summary>The backing child, or null.</summary>
    public BlockChild? Backing => FindChild(c => (c.Role & ChildRole.Cow) != 0);

    /// <summary>The node's length in bytes: the driver's length rounded up to whole 512-byte sectors.</summary>
    /// <remarks>
    /// QEMU counts node lengths in sectors, so a 10000-byte raw file is a 10240-byte disk whose last 240 bytes read
    /// as zeroes (and grow the file when written). Block keeps that view so sizes, bounds and maps agree with QEMU.
    /// </remarks>
    public long Length => (Impl.Length + 511) & ~511L;

    /// <summary>
    /// True unless this node or one below it has no medium (a host CD-ROM drive with no disc), as QEMU's
    /// <c>bdrv_is_inserted</c> asks every child.
    /// </summary>
    public bool IsInserted
    {
        get
        {
            if (!Impl.IsInserted)
                return false;
            foreach (var child in Children)
            {
                if (!child.Node.IsInserted)
                    return false;
            }
            return true;
        }
    }

    /// <summary>Host bytes the node's storage occupies, when known.</summary>
    public long? AllocatedSize => Impl.AllocatedSize;

    /// <summary>The file name QEMU shows for the node (while the node opens: its primary child's).</summary>
    public string Filename => _impl is { } impl ? impl.Filename : PrimaryChild?.Node.Filename ?? string.Empty;

    /// <summary>What the node's parents do with it, together.</summary>
    public BlockPermissions Permissions { get; internal set; }

    /// <summary>What every parent lets others do, together.</summary>
    public BlockPermissions SharedPermissions { get; internal set; } = BlockPermissions.All;

    /// <summary>True if the graph holds the node on a user's behalf (<c>blockdev-add</c>) and keeps it without parents.</summary>
    public bool IsMonitorOwned { get; internal set; }

    /// <summary>Holds that keep the node open without a parent while the graph changes around it (a reopen).</summary>
    internal int PinCount { get; set; }

    /// <inheritdoc />
    public string ParentDescription => $"node '{NodeName}'";

    /// <summary>Number of images in the backing chain below this node.</summary>
    public int BackingDepth
    {
        get
        {
            int depth = 0;
            for (var b = Backing?.Node; b != null; b = b.Backing?.Node)
                depth++;
            return depth;
        }
    }

    /// <summary>The child named <paramref name="name"/>, or null.</summary>
    public BlockChild? GetChild(string name) => FindChild(c => c.Name == name);

    private BlockChild? FindChild(Func<BlockChild, bool> predicate)
    {
        lock (_children)
        {
            foreach (var c in _children)
            {
                if (predicate(c))
                    return c;
            }
        }
        return null;
    }

    internal void AddChildEdge(BlockChild child)
    {
        lock (_children)
            _children.Add(child);
    }

    internal void RemoveChildEdge(BlockChild child)
    {
        lock (_children)
            _children.Remove(child);
    }

    internal void AddParentEdge(BlockChild edge)
    {
        lock (_parents)
            _parents.Add(edge);
    }

    internal void RemoveParentEdge(BlockChild edge)
    {
        lock (_parents)
            _parents.Remove(edge);
    }

    internal int ParentCount
    {
        get
        {
            lock (_parents)
                return _parents.Count;
        }
    }

    /// <summary>Takes the flags <paramref name="options"/> give (at creation, and again when the node is reopened).</summary>
    /// <exception cref="BlockOptionsException">The options contradict each other.</exception>
    internal void ApplyOptions(BlockdevOptions options)
    {
        bool readOnly = options.ReadOnly ?? false;
        var discard = options.Discard ?? BlockdevDiscardOptions.Ignore;
        var detectZeroes = options.DetectZeroes ?? BlockdevDetectZeroesOptions.Off;
        bool forceShare = options.ForceShare ?? false;
        if (detectZeroes == BlockdevDetectZeroesOptions.Unmap && discard != BlockdevDiscardOptions.Unmap)
            throw new BlockOptionsException("setting detect-zeroes to unmap is not allowed without setting discard operation to unmap");
        if (forceShare && !readOnly)
            throw new BlockOptionsException("force-share=on can only be used with read-only images");
        Options = options;
        ReadOnly = readOnly;
        CacheDirect = options.Cache?.Direct ?? false;
        CacheNoFlush = options.Cache?.NoFlush ?? false;
        Discard = discard;
        DetectZeroes = detectZeroes;
        ForceShare = forceShare;
    }

    internal void AttachDriver(NodeDriver impl)
    {
        _impl = impl;
        RefreshLimits();
    }

    internal NodeDriver? DetachDriver()
    {
        var impl = _impl;
        _impl = null;
        return impl;
    }

    /// <summary>Reads the driver's limits again (after a reopen or a child change).</summary>
    public void RefreshLimits()
    {
        var limits = Impl.Limits;
        int align = limits.RequestAlignment;
        long mask = align - 1;
        if (align < 1 || (align & (align - 1)) != 0)
            throw new InvalidOperationException($"Driver '{DriverName}' reported request alignment {align}, not a power of two");
        Limits = limits;
        _alignMask = mask;
        int maxTransfer = limits.MaxTransfer > 0 ? limits.MaxTransfer : int.MaxValue;
        _maxTransfer = Math.Max(align, maxTransfer & ~(align - 1));
        _supportedWriteFlags = Impl.SupportedWriteFlags;
        _tracker = align > 1 || _forcedTracking > 0 ? (_tracker ?? new RequestTracker()) : null;
        _readOnlyFlag = ReadOnly;
    }

    /// <summary>The image information of this node (<c>qemu-img info</c>), optionally with the whole backing chain.</summary>
    public ImageInfo GetImageInfo(bool backingChain = false)
    {
        var impl = Impl;
        var backing = Backing?.Node;
        return new ImageInfo
        {
            Filename = Filename,
            Format = DriverName,
            DirtyFlag = impl.DirtyFlag ?? (impl.HasDriverInfo ? false : null),
            ActualSize = AllocatedSize,
            VirtualSize = Length,
            ClusterSize = impl.ClusterSize,
            Encrypted = impl.IsEncrypted ? true : null,
            FormatSpecific = impl.SpecificInfo,
            BackingFilename = impl.BackingFileName,
            FullBackingFilename = impl.BackingFileName is { } name ? backing?.Filename ?? ResolveReference(name) : null,
            BackingFilenameFormat = impl.BackingFileFormat,
            BackingImage = backingChain ? backing?.GetImageInfo(true) : null,
            Snapshots = impl.Snapshots is { Count: > 0 } snapshots ? snapshots : null,
        };
    }

    /// <summary>
    /// Resolves a file name recorded inside this node's image (a backing or extent file) the way QEMU does: relative
    /// names are relative to the directory of this image's file; absolute names, protocols and <c>json:</c> stay.
    /// </summary>
    public string ResolveReference(string name)
    {
        if (name.Length == 0 || Path.IsPathRooted(name) || name.StartsWith("json:", StringComparison.Ordinal) || IsProtocolName(name))
            return name;
        string? dir = Path.GetDirectoryName(ReferenceBaseFilename);
        return string.IsNullOrEmpty(dir) ? name : Path.Combine(dir, name);
    }

    /// <summary>
    /// The image of this node's backing chain (below it) that <paramref name="name"/> names, or null (QEMU's
    /// <c>bdrv_find_backing_image</c>, as <c>qemu-img commit -b</c> and <c>rebase -b</c> look an image up): the backing
    /// file name an image records for it, or a path to the same file, a relative one being relative to the directory of
    /// the image above it.
    /// </summary>
    public BlockNode? FindBackingImage(string name)
    {
        for (var overlay = this; overlay.Backing?.Node is { } backing; overlay = backing)
        {
            if (overlay.Impl.BackingFileName == name)
                return backing;
            string path = overlay.ResolveReference(name);
            if (path == backing.Filename || NodeOpenContext.Canonical(path) == NodeOpenContext.Canonical(backing.Filename))
                return backing;
        }
        return null;
    }

    /// <summary>
    /// The file name that names inside the image are relative to: the node's own, or, while its driver is still
    /// opening it (and so has no file name yet), its primary child's.
    /// </summary>
    internal string ReferenceBaseFilename => _impl != null ? Filename : PrimaryChild?.Node.Filename ?? string.Empty;

    private static bool IsProtocolName(string name)
    {
        int colon = name.IndexOf(':');
        int slash = name.IndexOf('/');
        return colon > 0 && (slash < 0 || colon < slash);
    }

    /// <summary>
    /// True while the node or its backing node is encrypted and waits for its key (QEMU 2.8's
    /// <c>bdrv_key_required</c>, <c>encryption_key_missing</c>); <see cref="BlockGraph.SetPasswordAsync"/> gives it.
    /// </summary>
    public bool KeyRequired => Impl.IsKeyMissing || Backing?.Node.Impl.IsKeyMissing == true;

    /// <summary>The node as <c>query-named-block-nodes</c> shows it.</summary>
    public BlockDeviceInfo GetDeviceInfo() => new()
    {
        File = Filename,
        NodeName = NodeName,
        ReadOnly = ReadOnly,
        Driver = DriverName,
        BackingFile = Impl.BackingFileName,
        BackingFileDepth = BackingDepth,
        Encrypted = Impl.IsEncrypted,
        EncryptionKeyMissing = KeyRequired,
        DetectZeroes = DetectZeroes,
        Image = GetImageInfo(backingChain: true),
        Cache = new BlockdevCacheInfo { Writeback = true, Direct = CacheDirect, NoFlush = CacheNoFlush },
        WriteThreshold = WriteThreshold,
        DirtyBitmaps = QueryDirtyBitmaps(),
    };

    /// <summary>
    /// Statistics of this node: only the highest write offset is kept per node, as in QEMU, whose per-node counters
    /// are never set up for accounting (so <c>account_invalid</c> and <c>account_failed</c> read false, as
    /// qemu-system-x86_64 7.2 shows them).
    /// </summary>
    public BlockStats GetStats(bool withBacking) => new()
    {
        NodeName = NodeName,
        Stats = new BlockDeviceStats { WrHighestOffset = WrHighestOffset },
        Parent = PrimaryChild?.Node.GetStats(withBacking),
        Backing = withBacking ? Backing?.Node.GetStats(withBacking) : null,
    };

    /// <inheritdoc />
    public override string ToString() => $"{NodeName} ({DriverName})";
}
