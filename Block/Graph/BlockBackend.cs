using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using Block.Accounting;
using Block.Devices;
using Block.Events;
using Block.Io;
using Block.Metrics;
using Block.Qapi;
using Block.Throttle;

namespace Block.Graph;

/// <summary>
/// The attachment point of a device or user (QEMU's <c>BlockBackend</c>): a named handle on a root node with
/// guest-facing range checks, accounting, error policies, I/O status and drain.
/// </summary>
/// <remarks>
/// Requests outside the device are refused with EIO and counted as invalid, as QEMU's devices see them. Failed
/// requests go through the read or write error policy: <c>report</c> throws, <c>ignore</c> completes,
/// <c>stop</c> (and <c>enospc</c> for ENOSPC) holds the request and retries it when <see cref="Resume"/> is called,
/// raising <see cref="BlockIoErrorEvent"/> in every case.
/// </remarks>
public sealed class BlockBackend : IBlockParent, IAsyncDisposable
{
    private readonly BlockBackendOptions _options;
    private BlockChild? _root;
    private BlockNode? _rootNode;
    /// <summary>No request counted (<see cref="InFlightCounter"/> tokens are positive).</summary>
    private const int NoToken = -1;

    private readonly InFlightCounter _inFlight = new();
    private readonly object _quiesceLock = new();
    private int _quiesce;
    private TaskCompletionSource? _quiesceGate;
    private TaskCompletionSource? _resumeGate;
    private readonly RequestFlags _writeFlags;
    private readonly object _throttleLock = new();
    private ThrottleGroupMember? _throttle;

    internal BlockBackend(BlockGraph graph, BlockBackendOptions options)
    {
        Graph = graph;
        _options = options;
        _writeFlags = options.WriteThrough ? RequestFlags.Fua : RequestFlags.None;
        Stats = new BlockAcctStats(graph.Time);
        foreach (var interval in options.StatsIntervals)
            Stats.AddInterval(interval);
        if (options.IoStatusEnabled)
            IoStatus = BlockDeviceIoStatus.Ok;
    }

    /// <summary>The graph.</summary>
    public BlockGraph Graph { get; }

    /// <summary>The backend's name (QAPI <c>device</c>).</summary>
    public string Name => _options.Name;

    /// <summary>The root node, or null when no medium is inserted.</summary>
    public BlockNode? Root => _rootNode;

    /// <summary>The edge to the root node.</summary>
    public BlockChild? RootChild => _root;

    /// <summary>Accounting.</summary>
    public BlockAcctStats Stats { get; }

    /// <summary>What a failed read does.</summary>
    public BlockdevOnError ReadErrorPolicy => _options.ReadErrorPolicy;

    /// <summary>What a failed write or flush does.</summary>
    public BlockdevOnError WriteErrorPolicy => _options.WriteErrorPolicy;

    /// <summary>The guest device attached to the backend, or null (then the medium counts as removable, as in QEMU).</summary>
    public IBlockDeviceModel? Device { get; private set; }

    /// <summary>
    /// Attaches the guest device <paramref name="device"/>. Its I/O status is enabled when the device supports one and
    /// an error policy can stop (<c>werror</c> enospc or stop, <c>rerror</c> stop), as QEMU enables it.
    /// </summary>
    /// <exception cref="BlockException">A device is attached already.</exception>
    public void AttachDevice(IBlockDeviceModel device)
    {
        ArgumentNullException.ThrowIfNull(device);
        if (Device != null)
            throw new BlockException(Errno.EBUSY, $"Drive '{Name}' is already in use by another device");
        Device = device;
        bool canStop = WriteErrorPolicy is BlockdevOnError.Enospc or BlockdevOnError.Stop || ReadErrorPolicy == BlockdevOnError.Stop;
        if (device.SupportsIoStatus && canStop)
            IoStatus ??= BlockDeviceIoStatus.Ok;
    }

    /// <summary>The backend's membership of a throttle group, or null when its I/O is not throttled.</summary>
    public ThrottleGroupMember? Throttle => Volatile.Read(ref _throttle);

    /// <summary>The I/O status, when enabled: the first error that stopped the backend sticks until <see cref="Resume"/>.</summary>
    public BlockDeviceIoStatus? IoStatus { get; private set; }

    /// <summary>True while a request is held by a <c>stop</c> policy.</summary>
    public bool IsStopped => Volatile.Read(ref _resumeGate) != null;

    /// <inheritdoc />
    public string ParentDescription => Name.Length > 0 ? $"block device '{Name}'" : "an unnamed block device";

    /// <summary>The device's length in bytes.</summary>
    public long Length => (_rootNode ?? throw NoMedium()).Length;

    /// <summary>
    /// True if a medium is inserted: a root node, and a disc in the host drive if the root is a <c>host_cdrom</c>
    /// (QEMU's <c>blk_is_inserted</c>, which a CD-ROM model asks on a guest's TEST UNIT READY).
    /// </summary>
    public bool IsInserted => _rootNode is { } root && root.IsInserted;

    /// <summary>True if requests can reach the medium: inserted, and the device's tray (if any) is closed
    /// (QEMU's <c>blk_is_available</c>).</summary>
    public bool IsAvailable => IsInserted && Device is not { HasTray: true, IsTrayOpen: true };

    /// <summary>
    /// A guest's eject (START STOP UNIT with LoEj) reaching the host: opens (<paramref name="eject"/> true) or closes
    /// the tray of a <c>host_cdrom</c> under the medium (QEMU's <c>blk_eject</c>). Nothing for other media.
    /// </summary>
    public void EjectMedium(bool eject) => _rootNode?.Impl.Eject(eject);

    /// <summary>
    /// A guest's PREVENT ALLOW MEDIUM REMOVAL reaching the host: locks or unlocks a <c>host_cdrom</c>'s drive under
    /// the medium (QEMU's <c>blk_lock_medium</c>). Nothing for other media.
    /// </summary>
    public void LockMedium(bool locked) => _rootNode?.Impl.LockMedium(locked);

    internal BlockBackendOptions Options => _options;

    /// <summary>
    /// How a new medium is opened (QEMU's root state): the drive's read-only, cache, aio, discard and detect-zeroes
    /// settings, taken from the medium in the drive whenever there is one.
    /// </summary>
    internal ImageOpenOptions MediumOptions { get; set; } = new();

    /// <summary>Remembers the current medium's settings for the next one (QEMU's <c>blk_update_root_state</c>).</summary>
    internal void UpdateMediumOptions()
    {
        if (_rootNode is not { } root)
            return;
        MediumOptions = MediumOptions with
        {
            ReadOnly = root.ReadOnly,
            CacheDirect = root.CacheDirect,
            NoFlush = root.CacheNoFlush,
            Discard = root.Discard,
            DetectZeroes = root.DetectZeroes,
        };
    }

    /// <summary>The backend's <see cref="BlockMetrics.DeviceTag"/>: its name, or its root node's for an unnamed backend.</summary>
    internal string MetricsName => Name.Length > 0 ? Name : _rootNode?.NodeName ?? string.Empty;

    internal void SetRoot(BlockChild? root)
    {
        _root = root;
        _rootNode = root?.Node;
    }

    /// <summary>Reads into <paramref name="buffer"/> at <paramref name="offset"/>.</summary>
    public ValueTask ReadAsync(long offset, Memory<byte> buffer, RequestFlags flags = RequestFlags.None) =>
        ReadAsync(offset, new IoVector(buffer), flags);

    /// <summary>Reads into <paramref name="buffers"/> at <paramref name="offset"/>.</summary>
    public ValueTask ReadAsync(long offset, IoVector buffers, RequestFlags flags = RequestFlags.None)
    {
        int token = _inFlight.Begin();
        if (Volatile.Read(ref _quiesce) != 0 || _throttle != null)
        {
            EndRequest(token);
            return RunAsync(Request.Read(offset, buffers, flags));
        }
        var root = _rootNode;
        if (root is null)
        {
            EndRequest(token);
            return ValueTask.FromException(NoMedium());
        }
        int bytes = buffers.Length;
        long length = root.Length;
        if (offset < 0 || offset > length || length - offset < bytes || bytes == 0)
        {
            if (bytes != 0 || offset < 0 || offset > length || !root.IsInserted)
            {
                EndRequest(token);
                return Invalid(BlockAcctType.Read, root);
            }
        }

        long start = _options.Accounting || BlockMetrics.TimesRequests ? Stats.GetTimestamp() : 0;
        ValueTask task;
        try
        {
            task = root.ReadAsync(offset, buffers, flags);
        }
        catch (Exception e)
        {
            task = ValueTask.FromException(e);
        }
        if (task.IsCompletedSuccessfully)
        {
            task.GetAwaiter().GetResult();
            EndRequest(token);
            if (_options.Accounting)
                Stats.Done(BlockAcctType.Read, bytes, start);
            if (BlockMetrics.MeasuresRequests)
                BlockMetrics.RecordRequest(this, "read", bytes, start);
            return default;
        }
        return CompleteAsync(task, Request.Read(offset, buffers, flags), start, token);
    }

    /// <summary>Writes <paramref name="data"/> at <paramref name="offset"/>.</summary>
    public ValueTask WriteAsync(long offset, ReadOnlyMemory<byte> data, RequestFlags flags = RequestFlags.None) =>
        WriteAsync(offset, IoVector.FromReadOnly(data), flags);

    /// <summary>Writes <paramref name="data"/> at <paramref name="offset"/>.</summary>
    public ValueTask WriteAsync(long offset, Memory<byte> data, RequestFlags flags = RequestFlags.None) =>
        WriteAsync(offset, new IoVector(data), flags);

    /// <summary>Writes <paramref name="buffers"/> at <paramref name="offset"/>.</summary>
    public ValueTask WriteAsync(long offset, IoVector buffers, RequestFlags flags = RequestFlags.None)
    {
        flags |= _writeFlags;
        int token = _inFlight.Begin();
        if (Volatile.Read(ref _quiesce) != 0 || _throttle != null)
        {
            EndRequest(token);
            return RunAsync(Request.Write(offset, buffers, flags));
        }
        var root = _rootNode;
        if (root is null)
        {
            EndRequest(token);
            return ValueTask.FromException(NoMedium());
        }
        int bytes = buffers.Length;
        if (!CheckRange(root, offset, bytes) || (bytes == 0 && !root.IsInserted))
        {
            EndRequest(token);
            return Invalid(BlockAcctType.Write, root);
        }

        long start = _options.Accounting || BlockMetrics.TimesRequests ? Stats.GetTimestamp() : 0;
        ValueTask task;
        try
        {
            task = root.WriteAsync(offset, buffers, flags);
        }
        catch (Exception e)
        {
            task = ValueTask.FromException(e);
        }
        if (task.IsCompletedSuccessfully)
        {
            task.GetAwaiter().GetResult();
            EndRequest(token);
            if (_options.Accounting)
                Stats.Done(BlockAcctType.Write, bytes, start);
            if (BlockMetrics.MeasuresRequests)
                BlockMetrics.RecordRequest(this, "write", bytes, start);
            return default;
        }
        return CompleteAsync(task, Request.Write(offset, buffers, flags), start, token);
    }

    /// <summary>Makes <c>[offset, offset + bytes)</c> read as zeroes.</summary>
    public ValueTask WriteZeroesAsync(long offset, long bytes, RequestFlags flags = RequestFlags.None) =>
        RunAsync(Request.WriteZeroes(offset, bytes, flags | _writeFlags));

    /// <summary>Discards <c>[offset, offset + bytes)</c> (when the root was opened with <c>discard=unmap</c>).</summary>
    public ValueTask DiscardAsync(long offset, long bytes) => RunAsync(Request.Discard(offset, bytes));

    /// <summary>Flushes the root node and everything below it.</summary>
    public ValueTask FlushAsync() => RunAsync(Request.Flush());

    /// <summary>
    /// Writes VM state (the area snapshots keep past the disk) to the first node from the root down, through filters,
    /// whose format keeps it; with write-through caching, flushes afterwards, as QEMU's <c>blk_save_vmstate</c> does.
    /// </summary>
    public async ValueTask WriteVmStateAsync(long position, IoVector buffers)
    {
        await VmStateNode().WriteVmStateAsync(position, buffers).ConfigureAwait(false);
        if (_writeFlags != RequestFlags.None)
            await FlushAsync().ConfigureAwait(false);
    }

    /// <summary>Reads VM state from the node <see cref="WriteVmStateAsync"/> writes it to.</summary>
    public ValueTask ReadVmStateAsync(long position, IoVector buffers) => VmStateNode().ReadVmStateAsync(position, buffers);

    private BlockNode VmStateNode()
    {
        var node = _rootNode ?? throw new BlockException(Errno.ENOMEDIUM, "No medium inserted");
        while (node.Driver.Kind == Drivers.BlockDriverKind.Filter && node.PrimaryChild?.Node is { } below)
            node = below;
        return node;
    }

    /// <summary>The allocation status of a prefix of <c>[offset, offset + bytes)</c> of the root.</summary>
    public ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long bytes, bool wantZero = true) =>
        (_rootNode ?? throw NoMedium()).GetBlockStatusAsync(offset, bytes, wantZero);

    /// <summary>Resizes the device; takes the resize permission for the duration if the backend does not hold it.</summary>
    public async ValueTask TruncateAsync(long length, PreallocMode preallocation = PreallocMode.Off, bool exact = false)
    {
        var root = _rootNode ?? throw NoMedium();
        var edge = _root!;
        bool added = false;
        if ((edge.Permissions & BlockPermissions.Resize) == 0)
        {
            Graph.UpdateEdgePermissions(edge, edge.Permissions | BlockPermissions.Resize, edge.SharedPermissions);
            added = true;
        }
        try
        {
            await root.TruncateAsync(length, preallocation, exact).ConfigureAwait(false);
        }
        finally
        {
            if (added)
                Graph.UpdateEdgePermissions(edge, edge.Permissions & ~BlockPermissions.Resize, edge.SharedPermissions);
        }
    }

    /// <summary>
    /// Lets requests held by a <c>stop</c> policy on this backend retry, and resets its io-status.
    /// <see cref="BlockGraph.Continue"/> (QMP <c>cont</c>) does this for every backend.
    /// </summary>
    public void Resume()
    {
        ResetIoStatus();
        ReleaseHeld();
    }

    internal void ResetIoStatus()
    {
        if (IoStatus != null)
            IoStatus = BlockDeviceIoStatus.Ok;
    }

    /// <summary>Lets the held requests retry; true if there were any.</summary>
    internal bool ReleaseHeld()
    {
        var gate = Interlocked.Exchange(ref _resumeGate, null);
        gate?.TrySetResult();
        return gate != null;
    }

    /// <summary>
    /// Sets the backend's I/O limits (<c>block_set_io_throttle</c>): limits with no average turn throttling off and
    /// leave the group; otherwise a backend not yet throttled joins <paramref name="group"/> (else
    /// <paramref name="defaultGroup"/>), a throttled one moves to <paramref name="group"/> when it is given, and the
    /// limits replace the whole group's.
    /// </summary>
    /// <exception cref="BlockOptionsException">The limits break one of QEMU's rules.</exception>
    public void SetIoThrottle(ThrottleConfig config, string? group = null, string? defaultGroup = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        lock (_throttleLock)
        {
            var member = _throttle;
            if (!config.IsEnabled)
            {
                if (member != null)
                {
                    Volatile.Write(ref _throttle, null);
                    Graph.ThrottleGroups.Leave(member);
                }
                return;
            }
            if (member != null && group != null && member.Group.Name != group)
            {
                Volatile.Write(ref _throttle, null);
                Graph.ThrottleGroups.Leave(member);
                member = null;
            }
            member ??= Graph.ThrottleGroups.Join(group ?? defaultGroup ?? Name, Name);
            member.Group.Configure(config);
            Volatile.Write(ref _throttle, member);
        }
    }

    /// <summary>The backend as <c>query-block</c> shows it.</summary>
    public BlockInfo GetInfo() => new()
    {
        Device = Name,
        Removable = Device?.IsRemovable ?? true,
        Locked = Device?.IsMediumLocked ?? false,
        TrayOpen = Device is { HasTray: true } tray ? tray.IsTrayOpen : null,
        Inserted = _rootNode?.GetDeviceInfo() is { } inserted ? WithThrottleInfo(inserted) : null,
        IoStatus = IoStatus,
        DirtyBitmaps = _rootNode?.QueryDirtyBitmaps(),
    };

    /// <summary>The throttling members of <c>BlockDeviceInfo</c>: the averages always, bursts and sizes only when set.</summary>
    private BlockDeviceInfo WithThrottleInfo(BlockDeviceInfo info)
    {
        if (Volatile.Read(ref _throttle) is not { } member)
            return info;
        var c = member.Group.Config;
        return info with
        {
            Bps = c.BpsTotal.Average,
            BpsRd = c.BpsRead.Average,
            BpsWr = c.BpsWrite.Average,
            Iops = c.IopsTotal.Average,
            IopsRd = c.IopsRead.Average,
            IopsWr = c.IopsWrite.Average,
            BpsMax = NonZero(c.BpsTotal.Max),
            BpsRdMax = NonZero(c.BpsRead.Max),
            BpsWrMax = NonZero(c.BpsWrite.Max),
            IopsMax = NonZero(c.IopsTotal.Max),
            IopsRdMax = NonZero(c.IopsRead.Max),
            IopsWrMax = NonZero(c.IopsWrite.Max),
            BpsMaxLength = MaxLength(c.BpsTotal),
            BpsRdMaxLength = MaxLength(c.BpsRead),
            BpsWrMaxLength = MaxLength(c.BpsWrite),
            IopsMaxLength = MaxLength(c.IopsTotal),
            IopsRdMaxLength = MaxLength(c.IopsRead),
            IopsWrMaxLength = MaxLength(c.IopsWrite),
            IopsSize = NonZero(c.IopsSize),
            Group = member.Group.Name,
        };

        static long? NonZero(long value) => value != 0 ? value : null;
        static long? MaxLength(ThrottleLimit limit) => limit.Max != 0 ? limit.BurstLengthSeconds : null;
    }

    /// <summary>The backend's statistics as <c>query-blockstats</c> shows them.</summary>
    public BlockStats GetStats()
    {
        var root = _rootNode;
        return new BlockStats
        {
            Device = Name,
            NodeName = root?.NodeName,
            Stats = Stats.Snapshot(root?.WrHighestOffset ?? 0),
            Parent = root?.PrimaryChild?.Node.GetStats(withBacking: true),
            Backing = root?.Backing?.Node.GetStats(withBacking: true),
        };
    }

    /// <summary>True if the backend may write (it holds the write permission on its root).</summary>
    public bool CanWrite => _root is { } r && (r.Permissions & BlockPermissions.Write) != 0;

    /// <summary>Detaches the root and closes nodes nobody else holds.</summary>
    public ValueTask DisposeAsync() => Graph.RemoveBackendAsync(this);

    /// <summary>Holds new requests (they wait in <see cref="EnterAsync"/>) until the matching <see cref="EndQuiesce"/>.</summary>
    internal void BeginQuiesce()
    {
        lock (_quiesceLock)
        {
            // The gate exists before the count says "quiesced", so a request that sees the count finds the gate.
            if (_quiesce == 0)
                Volatile.Write(ref _quiesceGate, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
            Interlocked.Increment(ref _quiesce);
        }
        Volatile.Read(ref _throttle)?.ReleaseQueued();
    }

    internal void EndQuiesce()
    {
        TaskCompletionSource? gate = null;
        lock (_quiesceLock)
        {
            if (Interlocked.Decrement(ref _quiesce) == 0)
                gate = Interlocked.Exchange(ref _quiesceGate, null);
        }
        gate?.TrySetResult();
    }

    /// <summary>
    /// Completes when no request is in flight through this backend. Called while quiesced: requests that began before
    /// the quiesce finish, and new ones wait, so the graph may change under the backend (its root included) afterwards.
    /// </summary>
    internal Task WaitIdleAsync() => _inFlight.WaitIdleAsync();

    private void EndRequest(int token) => _inFlight.End(token);

    /// <summary>
    /// Counts a request in once the backend is not quiesced, and returns its token. The count is taken before the
    /// quiesce flag is read (both are full fences), so a drain either sees the request or the request sees the drain:
    /// a request never reaches a root that the graph is replacing or reopening.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> EnterAsync()
    {
        while (true)
        {
            int token = _inFlight.Begin();
            if (Volatile.Read(ref _quiesce) == 0)
                return token;
            EndRequest(token);
            if (Volatile.Read(ref _quiesceGate) is { } gate)
                await gate.Task.ConfigureAwait(false);
            else
                await Task.Yield();
        }
    }

    private bool CheckRange(BlockNode root, long offset, long bytes)
    {
        if (offset < 0 || bytes < 0)
            return false;
        if (_options.AllowWriteBeyondEof)
            return offset <= BlockNode.MaxLength - bytes;
        long length = root.Length;
        return offset <= length && length - offset >= bytes;
    }

    // Off the hot path: a request out of range on a drive without a disc is told there is no medium, as QEMU checks
    // availability before the range.
    private ValueTask Invalid(BlockAcctType type, BlockNode root)
    {
        if (!root.IsInserted)
            return ValueTask.FromException(new BlockException(Errno.ENOMEDIUM, "No medium found"));
        if (_options.Accounting)
            Stats.Invalid(type);
        return ValueTask.FromException(new BlockException(Errno.EIO, "Request out of range"));
    }

    /// <summary>The path of requests that may wait: quiesced backends, write-zeroes, discards and flushes.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask RunAsync(Request request)
    {
        // The latency starts at submission, as a QEMU device's accounting cookie does: time spent waiting for a drain
        // or for throttling budget is part of what the guest sees.
        long start = _options.Accounting || BlockMetrics.TimesRequests ? Stats.GetTimestamp() : 0;
        int token = await EnterAsync().ConfigureAwait(false);
        var root = _rootNode;
        if (root is null)
        {
            EndRequest(token);
            throw NoMedium();
        }
        if (request.Kind is RequestKind.Read or RequestKind.Write or RequestKind.WriteZeroes or RequestKind.Discard)
        {
            bool inRange = request.Kind == RequestKind.Read
                ? request.Offset >= 0 && request.Offset <= root.Length && root.Length - request.Offset >= request.Bytes
                : CheckRange(root, request.Offset, request.Bytes);
            if (!inRange)
            {
                EndRequest(token);
                if (request.Kind == RequestKind.Discard)
                    throw new BlockException(Errno.EIO, "Discard request out of range");
                await Invalid(request.AcctType, root).ConfigureAwait(false);
            }
        }
        // Throttled after the range check, as in QEMU: a refused request uses no budget. A drain lets queued
        // requests pass, so it never waits for budget.
        if (Volatile.Read(ref _throttle) is { } throttle && request.Kind is RequestKind.Read or RequestKind.Write or RequestKind.WriteZeroes
            && Volatile.Read(ref _quiesce) == 0)
        {
            try
            {
                await throttle.AdmitAsync(request.Kind != RequestKind.Read, request.Bytes).ConfigureAwait(false);
            }
            catch
            {
                EndRequest(token);
                throw;
            }
        }
        await CompleteAsync(Issue(request), request, start, token).ConfigureAwait(false);
    }

    private ValueTask Issue(Request r)
    {
        var root = _rootNode;
        if (root is null)
            return ValueTask.FromException(NoMedium());
        try
        {
            return r.Kind switch
            {
                RequestKind.Read => root.ReadAsync(r.Offset, r.Buffers, r.Flags),
                RequestKind.Write => root.WriteAsync(r.Offset, r.Buffers, r.Flags),
                RequestKind.WriteZeroes => root.WriteZeroesAsync(r.Offset, r.Bytes, r.Flags),
                RequestKind.Discard => root.DiscardAsync(r.Offset, r.Bytes),
                _ => root.FlushAsync(),
            };
        }
        catch (Exception e)
        {
            return ValueTask.FromException(e);
        }
    }

    /// <summary>
    /// Waits for an issued request, accounts it and applies the error policy; ends the request's count
    /// (<paramref name="token"/>). A request a <c>stop</c> policy holds is not in flight while it waits for
    /// <see cref="Resume"/>, so a drain does not wait for it; its retry enters again like a new request.
    /// </summary>
    /// <remarks>The wait allocates nothing (<see cref="ValueTaskContinuation{TState}"/>); a failure goes on in
    /// <see cref="RecoverAsync"/>.</remarks>
    private ValueTask CompleteAsync(ValueTask task, Request request, long start, int token) =>
        ValueTaskContinuation<Issued>.Then(task, new Issued(this, request, start, token), s_issuedCompleted);

    private static readonly Func<Issued, int, Exception?, ValueTask> s_issuedCompleted = static (issued, _, error) =>
    {
        var backend = issued.Backend;
        if (error is not null)
            return backend.RecoverAsync(error, issued.Request, issued.Start, issued.Token);
        backend.Account(issued.Request, issued.Start);
        backend.EndRequest(issued.Token);
        return default;
    };

    /// <summary>Counts a request that succeeded in the statistics and the meter.</summary>
    private void Account(in Request request, long start)
    {
        if (_options.Accounting && request.Kind != RequestKind.Discard)
            Stats.Done(request.AcctType, request.AcctBytes, start);
        if (BlockMetrics.MeasuresRequests)
            BlockMetrics.RecordRequest(this, request.MetricsOperation, request.Bytes, start);
    }

    /// <summary>
    /// Applies the error policy to a request that failed with <paramref name="error"/>: reports it, ignores it, or
    /// holds it until <see cref="Resume"/> and issues it again, for as long as it fails; ends the request's count.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask RecoverAsync(Exception error, Request request, long start, int token)
    {
        try
        {
            while (true)
            {
                if (error is not BlockException e)
                {
                    ExceptionDispatchInfo.Throw(error);
                    return;
                }
                if (_options.Accounting && request.Kind != RequestKind.Discard)
                    Stats.Failed(request.AcctType, start);
                var action = DecideAction(request.Kind == RequestKind.Read, e.Errno);
                Graph.RaiseEvent(new BlockIoErrorEvent(Name, _rootNode?.NodeName,
                    request.Kind == RequestKind.Read ? IoOperationType.Read : IoOperationType.Write,
                    action, IoStatus != null ? e.Errno == Errno.ENOSPC : null, ErrnoText.Describe(e.Errno)));
                if (action == BlockErrorAction.Report)
                    ExceptionDispatchInfo.Throw(e);
                if (action == BlockErrorAction.Ignore)
                    return;
                var resume = StopForError(e.Errno);
                EndRequest(token);
                token = NoToken;
                await resume.ConfigureAwait(false);
                token = await EnterAsync().ConfigureAwait(false);
                start = _options.Accounting || BlockMetrics.TimesRequests ? Stats.GetTimestamp() : 0;
                try
                {
                    await Issue(request).ConfigureAwait(false);
                    Account(request, start);
                    return;
                }
                catch (Exception next)
                {
                    error = next;
                }
            }
        }
        finally
        {
            if (token != NoToken)
                EndRequest(token);
        }
    }

    /// <summary>What <see cref="CompleteAsync"/> keeps of an issued request until it completes.</summary>
    private readonly record struct Issued(BlockBackend Backend, Request Request, long Start, int Token);

    private BlockErrorAction DecideAction(bool read, Errno errno)
    {
        var policy = read ? _options.ReadErrorPolicy : _options.WriteErrorPolicy;
        return policy switch
        {
            BlockdevOnError.Ignore => BlockErrorAction.Ignore,
            BlockdevOnError.Stop => BlockErrorAction.Stop,
            BlockdevOnError.Enospc => errno == Errno.ENOSPC ? BlockErrorAction.Stop : BlockErrorAction.Report,
            _ => BlockErrorAction.Report,
        };
    }

    private Task StopForError(Errno errno)
    {
        if (IoStatus == BlockDeviceIoStatus.Ok)
            IoStatus = errno == Errno.ENOSPC ? BlockDeviceIoStatus.NoSpace : BlockDeviceIoStatus.Failed;
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var existing = Interlocked.CompareExchange(ref _resumeGate, gate, null) ?? gate;
        Graph.OnIoErrorStop();
        return existing.Task;
    }

    private static BlockException NoMedium() => new(Errno.ENOMEDIUM, "No medium inserted");

    private enum RequestKind
    {
        Read,
        Write,
        WriteZeroes,
        Discard,
        Flush,
    }

    private readonly record struct Request(RequestKind Kind, long Offset, IoVector Buffers, long Bytes, RequestFlags Flags)
    {
        public static Request Read(long offset, IoVector buffers, RequestFlags flags) => new(RequestKind.Read, offset, buffers, buffers.Length, flags);

        public static Request Write(long offset, IoVector buffers, RequestFlags flags) => new(RequestKind.Write, offset, buffers, buffers.Length, flags);

        public static Request WriteZeroes(long offset, long bytes, RequestFlags flags) => new(RequestKind.WriteZeroes, offset, default, bytes, flags);

        public static Request Discard(long offset, long bytes) => new(RequestKind.Discard, offset, default, bytes, RequestFlags.None);

        public static Request Flush() => new(RequestKind.Flush, 0, default, 0, RequestFlags.None);

        public BlockAcctType AcctType => Kind switch
        {
            RequestKind.Read => BlockAcctType.Read,
            RequestKind.Flush => BlockAcctType.Flush,
            _ => BlockAcctType.Write,
        };

        public long AcctBytes => Kind is RequestKind.Read or RequestKind.Write ? Bytes : 0;

        public string MetricsOperation => Kind switch
        {
            RequestKind.Read => "read",
            RequestKind.Write => "write",
            RequestKind.WriteZeroes => "write_zeroes",
            RequestKind.Discard => "discard",
            _ => "flush",
        };
    }
}
