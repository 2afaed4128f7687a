using System.Text.Json.Nodes;
using Block.Graph;
using Block.Io;
using Block.Jobs;
using Block.Qapi;

namespace Block.Drivers.Replication;

/// <summary>
/// One replication node: its stage, the guest requests each stage lets through, and the steps of the cycle (start,
/// checkpoint, stop, failover) that <see cref="BlockGraph"/> runs over every replication node of the graph.
/// </summary>
/// <remarks>
/// <para>The secondary's cycle, as QEMU 7.2 runs it. Start checks the chain (active → hidden → secondary disk, equal
/// lengths, the secondary disk a named drive, <c>top-id</c> at or above this node), makes the hidden disk writable and
/// starts an internal backup job with <c>sync=none</c> from the secondary disk into the hidden disk: before the
/// primary's write (through the NBD export) changes a cluster of the secondary disk for the first time since the
/// checkpoint, its old content is copied into the hidden disk, so the chain the guest reads still shows the checkpoint.
/// A checkpoint empties the active and hidden disks and re-arms the copy of every cluster. Failover commits the active
/// and hidden disks into the secondary disk (an internal active commit that completes itself): the secondary disk then
/// holds the last checkpoint plus the secondary guest's own writes, and the node's file becomes the secondary disk.</para>
/// <para>Stage-by-stage I/O: nothing passes before start (EIO); the primary never serves reads (EIO: the quorum's
/// first child does) and forwards writes while running; after a failed failover the secondary writes only where the
/// active or hidden disk already holds data, and elsewhere straight into the secondary disk, so the disks that could
/// not be committed stop growing.</para>
/// </remarks>
internal sealed class ReplicationNodeDriver : NodeDriver
{
    private readonly BlockChild _file;
    private readonly object _lock = new();
    // Read without the lock on every guest request; changed under it.
    private volatile ReplicationStage _stage;
    private bool _error;
    private BlockJob? _backup;
    private BlockNode? _hidden;
    private BlockNode? _secondary;
    private bool _reopenedHidden;
    private Task _failover = Task.CompletedTask;

    public ReplicationNodeDriver(BlockNode node, BlockChild file, ReplicationMode mode, string? topId)
        : base(node)
    {
        _file = file;
        Mode = mode;
        TopId = topId;
    }

    public ReplicationMode Mode { get; }

    public string? TopId { get; }

    public ReplicationStage Stage => _stage;

    /// <summary>Completes when a failover this node started has ended (at once if none did).</summary>
    public Task FailoverTask
    {
        get
        {
            lock (_lock)
                return _failover;
        }
    }

    /// <summary>This node's part of <c>query-xen-replication-status</c>: null when all is well.</summary>
    public string? StatusError
    {
        get
        {
            lock (_lock)
            {
                if (_stage == ReplicationStage.None)
                    return "Block replication is not running";
                // QEMU 7.2 reports a failover still committing as an error too; it clears when the commit ends.
                if (_error || _stage == ReplicationStage.Failover)
                    return "I/O error occurred";
                return null;
            }
        }
    }

    public override long Length => _file.Node.Length;

    public override long? AllocatedSize => null;

    // Every request reads the file through its edge: failover moves the edge from the active disk to the secondary disk.
    public override bool FollowsChildReplacement => true;

    /// <summary>QEMU's <c>json:{…}</c> name: driver, mode, top-id, and the file as its options would open it.</summary>
    public override string Filename
    {
        get
        {
            var json = new JsonObject
            {
                ["driver"] = "replication",
                ["mode"] = QapiEnum<ReplicationMode>.ToWire(Mode),
            };
            if (TopId is { } topId)
                json["top-id"] = topId;
            json["file"] = OpenOptionsOf(_file.Node);
            return "json:" + QemuJson.Compact(json);
        }
    }

    public override ValueTask ReadAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        var stage = Stage;
        if (stage == ReplicationStage.None || Mode == ReplicationMode.Primary)
            return ValueTask.FromException(new BlockException(Errno.EIO, "Input/output error"));
        return _file.Node.ReadAsync(offset, buffers, flags);
    }

    public override ValueTask WriteAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        var stage = Stage;
        if (stage == ReplicationStage.None
            || (Mode == ReplicationMode.Primary && stage is ReplicationStage.Failover or ReplicationStage.FailoverFailed))
            return ValueTask.FromException(new BlockException(Errno.EIO, "Input/output error"));
        if (stage == ReplicationStage.FailoverFailed)
            return WriteAllocatedOnlyAsync(offset, buffers, flags);
        return _file.Node.WriteAsync(offset, buffers, flags);
    }

    /// <summary>After a failed failover: data the active or hidden disk holds is overwritten there, the rest goes to the secondary disk.</summary>
    private async ValueTask WriteAllocatedOnlyAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        var active = _file.Node;
        var secondary = _secondary!;
        int done = 0;
        while (done < buffers.Length)
        {
            var (allocated, bytes) = await active.IsAllocatedAboveAsync(secondary, offset + done, buffers.Length - done).ConfigureAwait(false);
            int n = (int)Math.Clamp(bytes, 1, buffers.Length - done);
            var piece = buffers.Slice(done, n);
            if (allocated)
                await active.WriteAsync(offset + done, piece, flags).ConfigureAwait(false);
            else
                await secondary.WriteAsync(offset + done, piece, flags).ConfigureAwait(false);
            done += n;
        }
    }

    // A filter: the file answers for its own allocation.
    public override ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length, bool wantZero) =>
        new(new BlockStatus(BlockStatusFlags.Raw | BlockStatusFlags.OffsetValid, length, offset, _file.Node));

    /// <remarks>As QEMU's replication filter, the file is shared for reading and writing whatever the guest's device
    /// shares: on the secondary the NBD server writes the secondary disk below the active and hidden disks the guest
    /// reads, and the backup job writes the hidden disk.</remarks>
    public override (BlockPermissions Permissions, BlockPermissions Shared) GetChildPermissions(
        BlockChild child, BlockPermissions parentPermissions, BlockPermissions parentShared)
    {
        var (perm, shared) = base.GetChildPermissions(child, parentPermissions, parentShared);
        return (perm, shared | BlockPermissions.ConsistentRead | BlockPermissions.Write | BlockPermissions.WriteUnchanged);
    }

    /// <summary>Starts this node in <paramref name="mode"/> (part of <c>xen-set-replication enable=true</c>).</summary>
    public async ValueTask StartAsync(ReplicationMode mode)
    {
        lock (_lock)
        {
            if (_stage != ReplicationStage.None)
                throw new BlockException(Errno.EINVAL, "Block replication is running or done");
            if (mode != Mode)
                throw new BlockException(Errno.EINVAL, $"The parameter mode's value is invalid, needs {(int)Mode}, but got {(int)mode}");
        }
        if (Mode == ReplicationMode.Secondary)
            await StartSecondaryAsync().ConfigureAwait(false);
        lock (_lock)
        {
            _stage = ReplicationStage.Running;
            _error = false;
        }
    }

    private async ValueTask StartSecondaryAsync()
    {
        var graph = Node.Graph;
        var active = _file.Node;
        var hidden = active.Backing?.Node ?? throw new BlockException(Errno.EINVAL, "Active disk doesn't have backing file");
        var secondary = hidden.Backing?.Node ?? throw new BlockException(Errno.EINVAL, "Hidden disk doesn't have backing file");
        if (!secondary.Parents.Any(p => p.Parent is BlockBackend { Name.Length: > 0 }))
            throw new BlockException(Errno.EINVAL, "The secondary disk doesn't have block backend");
        if (active.Length != hidden.Length || hidden.Length != secondary.Length)
            throw new BlockException(Errno.EINVAL, "Active disk, hidden disk, secondary disk's length are not the same");
        if (!active.Impl.CanMakeEmpty || !hidden.Impl.CanMakeEmpty)
            throw new BlockException(Errno.EINVAL, "Active disk or hidden disk doesn't support make_empty");
        if (!IsTopValid(graph))
            throw new BlockException(Errno.EINVAL, "No top_bs or it is invalid");

        bool reopened = hidden.ReadOnly;
        if (reopened)
            await graph.ReopenAsync(hidden, readOnly: false).ConfigureAwait(false);
        try
        {
            var backup = await graph.StartReplicationBackupAsync($"replication-backup-{Node.NodeName}", secondary, hidden).ConfigureAwait(false);
            lock (_lock)
            {
                _backup = backup;
                _hidden = hidden;
                _secondary = secondary;
                _reopenedHidden = reopened;
            }
        }
        catch
        {
            if (reopened)
                await graph.ReopenAsync(hidden, readOnly: true).ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>True if <see cref="TopId"/> names this node or a node above it.</summary>
    private bool IsTopValid(BlockGraph graph)
    {
        BlockNode top;
        try
        {
            top = graph.LookupNode(TopId, TopId);
        }
        catch (BlockException)
        {
            return false;
        }
        var seen = new HashSet<BlockNode>();
        var pending = new Stack<BlockNode>([top]);
        while (pending.Count > 0)
        {
            var n = pending.Pop();
            if (ReferenceEquals(n, Node))
                return true;
            if (!seen.Add(n))
                continue;
            foreach (var c in n.Children)
                pending.Push(c.Node);
        }
        return false;
    }

    /// <summary>This node's part of <c>xen-colo-do-checkpoint</c>: the secondary empties its active and hidden disks.</summary>
    public async ValueTask CheckpointAsync()
    {
        BlockJob? backup;
        lock (_lock)
        {
            if (_stage is ReplicationStage.Done or ReplicationStage.Failover)
                return;
            if (_error)
                throw new BlockException(Errno.EIO, "I/O error occurred");
            if (Mode == ReplicationMode.Primary)
                return;
            backup = _backup;
        }
        if (backup is null || backup.Completion.IsCompleted)
            throw new BlockException(Errno.EIO, "Backup job was cancelled unexpectedly");
        await using (await Node.Graph.BeginDrainAsync().ConfigureAwait(false))
        {
            await MakeEmptyAsync(_file.Node, _hidden!).ConfigureAwait(false);
            // Every cluster of the secondary disk is again to be saved before its first overwrite.
            ((BackupJob)backup).CopyAllAgain();
        }
    }

    private static async ValueTask MakeEmptyAsync(BlockNode active, BlockNode hidden)
    {
        try
        {
            await active.Impl.MakeEmptyAsync().ConfigureAwait(false);
            await hidden.Impl.MakeEmptyAsync().ConfigureAwait(false);
        }
        catch (BlockException e) when (e.Errno == Errno.ENOTSUP)
        {
            throw new BlockException(Errno.ENOTSUP, "Active disk or hidden disk doesn't support make_empty", e);
        }
    }

    /// <summary>
    /// This node's part of <c>xen-set-replication enable=false</c>: the primary stops forwarding; the secondary stops
    /// its backup and either drops what it buffered or, with <paramref name="failover"/>, starts committing it.
    /// </summary>
    public async ValueTask StopAsync(bool failover)
    {
        BlockJob? backup;
        lock (_lock)
        {
            switch (_stage)
            {
                case ReplicationStage.None:
                    throw new BlockException(Errno.EINVAL, "Block replication is not running");
                case ReplicationStage.Failover or ReplicationStage.FailoverFailed or ReplicationStage.Done:
                    return;
            }
            if (Mode == ReplicationMode.Primary)
            {
                _stage = ReplicationStage.Done;
                return;
            }
            backup = _backup;
            _backup = null;
        }
        if (backup != null)
        {
            backup.Cancel(force: true);
            await backup.Completion.ConfigureAwait(false);
        }
        var graph = Node.Graph;
        if (!failover)
        {
            await using (await graph.BeginDrainAsync().ConfigureAwait(false))
                await MakeEmptyAsync(_file.Node, _hidden!).ConfigureAwait(false);
            if (_reopenedHidden && _hidden!.IsOpen)
                await graph.ReopenAsync(_hidden, readOnly: true).ConfigureAwait(false);
            lock (_lock)
                _stage = ReplicationStage.Done;
            return;
        }

        var active = _file.Node;
        var secondary = _secondary!;
        BlockJob commit;
        try
        {
            commit = await graph.StartReplicationCommitAsync($"replication-commit-{Node.NodeName}", active, secondary).ConfigureAwait(false);
        }
        catch (BlockException)
        {
            lock (_lock)
            {
                _stage = ReplicationStage.FailoverFailed;
                _error = true;
            }
            throw;
        }
        lock (_lock)
        {
            _stage = ReplicationStage.Failover;
            _failover = FinishFailoverAsync(commit, secondary);
        }
    }

    /// <summary>Waits for the failover commit: done once the node's file is the secondary disk, failed otherwise.</summary>
    private async Task FinishFailoverAsync(BlockJob commit, BlockNode secondary)
    {
        await commit.Completion.ConfigureAwait(false);
        bool pivoted = ReferenceEquals(_file.Node, secondary);
        lock (_lock)
        {
            _stage = pivoted ? ReplicationStage.Done : ReplicationStage.FailoverFailed;
            _error = !pivoted;
            if (pivoted)
                _hidden = null;
        }
        // As in QEMU 7.2, a node that failed over leaves the replication cycle: later commands pass it by.
        if (pivoted)
            Node.Graph.UnregisterReplication(this);
    }

    public override ValueTask DisposeAsync()
    {
        Node.Graph.UnregisterReplication(this);
        BlockJob? backup;
        lock (_lock)
        {
            backup = _backup;
            _backup = null;
        }
        // The job's own end releases what it holds; the node need not wait for it to close. A job the graph's
        // shutdown already ended refuses the cancel, which is then moot.
        try
        {
            backup?.Cancel(force: true);
        }
        catch (BlockException)
        {
        }
        return base.DisposeAsync();
    }
}
