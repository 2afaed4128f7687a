using Block.Drivers.Replication;
using Block.Jobs;
using Block.Qapi;

namespace Block.Graph;

/// <summary>
/// Block replication (COLO) over the graph's <c>replication</c> nodes: what QMP's <c>xen-set-replication</c>,
/// <c>xen-colo-do-checkpoint</c> and <c>query-xen-replication-status</c> do, for a VMM to call directly.
/// </summary>
/// <remarks>
/// As in QEMU 7.2, where the list is the process's, every command acts on all the replication nodes of the graph, newest
/// first, and stops at the first error. A node that has failed over leaves the list.
/// </remarks>
public sealed partial class BlockGraph
{
    private readonly List<ReplicationNodeDriver> _replications = [];
    private readonly SemaphoreSlim _replicationCommands = new(1, 1);

    internal void RegisterReplication(ReplicationNodeDriver node)
    {
        lock (_replications)
            _replications.Insert(0, node);
    }

    internal void UnregisterReplication(ReplicationNodeDriver node)
    {
        lock (_replications)
            _replications.Remove(node);
    }

    private ReplicationNodeDriver[] ReplicationNodes()
    {
        lock (_replications)
            return [.. _replications];
    }

    /// <summary>
    /// Starts replication on every replication node (QMP <c>xen-set-replication enable=true</c>): start the secondary
    /// first, then the primary.
    /// </summary>
    /// <param name="mode">The side this graph is; every node must be of it.</param>
    /// <exception cref="BlockException">QEMU 7.2's words: "Block replication is running or done", "The parameter mode's
    /// value is invalid, needs 1, but got 0", "Active disk doesn't have backing file", "Hidden disk doesn't have backing
    /// file", "The secondary disk doesn't have block backend", "Active disk, hidden disk, secondary disk's length are not
    /// the same", "No top_bs or it is invalid".</exception>
    public async ValueTask StartReplicationAsync(ReplicationMode mode)
    {
        await _replicationCommands.WaitAsync().ConfigureAwait(false);
        try
        {
            foreach (var node in ReplicationNodes())
                await node.StartAsync(mode).ConfigureAwait(false);
        }
        finally
        {
            _replicationCommands.Release();
        }
    }

    /// <summary>
    /// A checkpoint (QMP <c>xen-colo-do-checkpoint</c>): call it on both sides once their VMs are in the same state; the
    /// secondary then drops what its guest wrote since the last one.
    /// </summary>
    /// <exception cref="BlockException">"I/O error occurred" after a failure; "Backup job was cancelled unexpectedly" on a
    /// secondary that is not running, as QEMU 7.2 words it.</exception>
    public async ValueTask ReplicationCheckpointAsync()
    {
        await _replicationCommands.WaitAsync().ConfigureAwait(false);
        try
        {
            foreach (var node in ReplicationNodes())
                await node.CheckpointAsync().ConfigureAwait(false);
        }
        finally
        {
            _replicationCommands.Release();
        }
    }

    /// <summary>
    /// Stops replication (QMP <c>xen-set-replication enable=false</c>). With <paramref name="failover"/> the secondary
    /// takes over: its active and hidden disks are committed into the secondary disk in the background, and errors are
    /// not reported, as in QEMU.
    /// </summary>
    /// <param name="failover">Commit the secondary's writes into its disk instead of dropping them.</param>
    /// <param name="waitForFailover">Return only once the failover commit has ended (QMP does not wait).</param>
    /// <exception cref="BlockException">Without failover: "Block replication is not running". With
    /// <paramref name="waitForFailover"/>: "I/O error occurred" if a failover commit failed.</exception>
    public async ValueTask StopReplicationAsync(bool failover, bool waitForFailover = false)
    {
        var started = new List<Task>();
        await _replicationCommands.WaitAsync().ConfigureAwait(false);
        try
        {
            foreach (var node in ReplicationNodes())
            {
                try
                {
                    await node.StopAsync(failover).ConfigureAwait(false);
                }
                catch (BlockException) when (failover)
                {
                    // QEMU 7.2 drops stop errors on failover: the secondary must take over whatever state it is in.
                }
                started.Add(node.FailoverTask);
            }
        }
        finally
        {
            _replicationCommands.Release();
        }
        if (waitForFailover)
        {
            await Task.WhenAll(started).ConfigureAwait(false);
            if (ReplicationNodes().Any(n => n.Stage == ReplicationStage.FailoverFailed))
                throw new BlockException(Errno.EIO, "I/O error occurred");
        }
    }

    /// <summary>QMP <c>query-xen-replication-status</c>: the first replication node in error, in QEMU 7.2's words.</summary>
    public ReplicationStatus QueryReplicationStatus()
    {
        foreach (var node in ReplicationNodes())
        {
            if (node.StatusError is { } desc)
                return new ReplicationStatus(true, desc);
        }
        return new ReplicationStatus(false);
    }

    /// <summary>The stage of the replication node <paramref name="nodeName"/>, or null if it is none or has failed over.</summary>
    public ReplicationStage? GetReplicationStage(string nodeName) =>
        ReplicationNodes().FirstOrDefault(n => n.Node.NodeName == nodeName)?.Stage;

    /// <summary>Starts replication's internal backup job (<c>sync=none</c>) from the secondary disk into the hidden disk.</summary>
    internal async ValueTask<BlockJob> StartReplicationBackupAsync(string id, BlockNode secondary, BlockNode hidden)
    {
        ThrowIfBusy(secondary);
        ThrowIfBusy(hidden);
        var job = new BackupJob(this, id, secondary, hidden, MirrorSyncMode.None, null, false, BlockdevOnError.Report, BlockdevOnError.Report)
        {
            IsInternal = true,
        };
        await job.SetUpAsync().ConfigureAwait(false);
        StartJob(job);
        return job;
    }

    /// <summary>Starts replication's failover: an internal active commit of <paramref name="active"/> and the images below it into <paramref name="base"/>.</summary>
    internal async ValueTask<BlockJob> StartReplicationCommitAsync(string id, BlockNode active, BlockNode @base)
    {
        var intermediates = new List<BlockNode>();
        for (var n = active.Backing?.Node; n != null && !ReferenceEquals(n, @base); n = n.Backing?.Node)
            intermediates.Add(n);
        var job = new MirrorJob(this, id, active, @base, new MirrorJobOptions
        {
            Base = @base,
            Granularity = @base.DefaultBitmapGranularity,
            OnSourceError = BlockdevOnError.Report,
            OnTargetError = BlockdevOnError.Report,
            ActiveCommit = true,
            ShareTargetWrite = true,
            Intermediates = intermediates,
        })
        {
            IsInternal = true,
        };
        await job.SetUpAsync().ConfigureAwait(false);
        StartJob(job);
        return job;
    }
}
