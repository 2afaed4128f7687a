namespace Block.Drivers.Replication;

/// <summary>Where one <c>replication</c> node is in its life (QEMU's <c>ReplicationStage</c>).</summary>
public enum ReplicationStage
{
    /// <summary>Not started: guest requests fail with EIO.</summary>
    None,
    /// <summary>Started: the primary forwards writes; the secondary buffers its own writes and backs up the primary's.</summary>
    Running,
    /// <summary>The secondary is committing its active and hidden disks into the secondary disk.</summary>
    Failover,
    /// <summary>That commit failed: writes go only where the active disk already holds data.</summary>
    FailoverFailed,
    /// <summary>Stopped, or failed over: requests pass through to the file.</summary>
    Done,
}
