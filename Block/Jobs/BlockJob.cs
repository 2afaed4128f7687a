using System.Diagnostics;
using Block.Events;
using Block.Graph;
using Block.Qapi;

namespace Block.Jobs;

/// <summary>
/// A block job on the live graph (QEMU's <c>BlockJob</c>): an asynchronous task over graph nodes with an id, a type,
/// progress, a speed limit, user and internal pauses, cancel and complete, error policies, and the schema's events.
/// Subclasses (stream, commit…) supply the work; this class runs the life cycle.
/// </summary>
/// <remarks>
/// <para>Life cycle: <see cref="Start"/> runs <see cref="RunAsync"/>; when it returns, <see cref="PrepareAsync"/>
/// makes the job's graph changes (a failure or a cancel runs <see cref="AbortAsync"/> instead), then
/// <see cref="CleanAsync"/>, the job leaves the graph's list, and last the event goes out
/// (<c>BLOCK_JOB_COMPLETED</c> or <c>BLOCK_JOB_CANCELLED</c>). The event is the last thing a job does, so a client that
/// has seen it finds the job gone and the graph changed, as under QEMU's single main loop.</para>
/// <para>Pauses: a job pauses only at its pause points (between chunks, in its sleeps), never holding a request. A
/// user pause (<see cref="Pause"/>) and an error policy's <c>stop</c> need <see cref="Resume"/>; drained sections pause
/// every job internally and wait until each is quiescent, so a graph change never runs beside a job's I/O.</para>
/// </remarks>
public abstract class BlockJob
{
    private readonly object _lock = new();
    private readonly JobRateLimit _limit = new();
    private readonly TaskCompletionSource _finished = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource _wake = NewSignal();
    private TaskCompletionSource _resume = NewSignal();
    private TaskCompletionSource _quiescent = NewSignal();
    private readonly List<BlockChild> _held = [];
    private int _pauseCount = 1;
    private bool _userPaused;
    private bool _paused;
    private bool _busy;
    private bool _cancelled;
    private bool _forceCancelled;
    private bool _ready;
    private bool _completeRequested;
    private long _len;
    private long _offset;
    private JobStatus _status = JobStatus.Created;
    private BlockDeviceIoStatus _ioStatus = BlockDeviceIoStatus.Ok;

    /// <summary>Creates a job; <see cref="BlockGraph"/> registers and starts it.</summary>
    /// <param name="graph">The graph.</param>
    /// <param name="id">The job id (QEMU's <c>job-id</c>).</param>
    /// <param name="type">The QAPI job type (<c>stream</c>, <c>commit</c>, <c>mirror</c>, <c>backup</c>).</param>
    protected BlockJob(BlockGraph graph, string id, string type)
    {
        ArgumentNullException.ThrowIfNull(graph);
        Graph = graph;
        Id = id;
        Type = type;
    }

    /// <summary>The graph.</summary>
    public BlockGraph Graph { get; }

    /// <summary>The job id (QAPI <c>device</c> in the seed's records).</summary>
    public string Id { get; }

    /// <summary>The QAPI job type.</summary>
    public string Type { get; }

    /// <summary>
    /// True for a job the library runs for a driver of its own (QEMU's <c>JOB_INTERNAL</c>: replication's backup and
    /// failover commit): no command lists, finds or steers it, it raises no events, and it completes by itself once
    /// ready.
    /// </summary>
    /// <remarks>QEMU 7.2 hides these jobs the same way: <c>query-block-jobs</c> on a COLO secondary is empty while its
    /// backup job runs, and a user's <c>block-job-cancel</c> cannot break replication behind the driver's back.</remarks>
    internal bool IsInternal { get; init; }

    /// <summary>The rate limit in bytes per second (0: none).</summary>
    public long Speed => _limit.Speed;

    /// <summary>The progress value when done.</summary>
    public long Length => Volatile.Read(ref _len);

    /// <summary>The progress so far.</summary>
    public long Offset => Volatile.Read(ref _offset);

    /// <summary>The job's state.</summary>
    public JobStatus Status
    {
        get
        {
            lock (_lock)
                return _status;
        }
    }

    /// <summary>True once cancelled (<see cref="Cancel"/>).</summary>
    public bool IsCancelled
    {
        get
        {
            lock (_lock)
                return _cancelled;
        }
    }

    /// <summary>Completes when the job has finished, its graph changes made and its event sent.</summary>
    public Task Completion => _finished.Task;

    /// <summary>The nodes the job holds (QEMU's op blockers: other jobs and most commands refuse them).</summary>
    public IEnumerable<BlockNode> HeldNodes
    {
        get
        {
            lock (_lock)
                return [.. _held.Select(e => e.Node)];
        }
    }

    /// <summary>The job as <c>query-block-jobs</c> reports it.</summary>
    public BlockJobInfo GetInfo()
    {
        lock (_lock)
        {
            return new BlockJobInfo
            {
                Type = Type,
                Device = Id,
                Len = _len,
                Offset = _offset,
                Busy = _busy,
                Paused = _pauseCount > 0,
                Speed = _limit.Speed,
                IoStatus = _ioStatus,
                Ready = _ready,
            };
        }
    }

    /// <summary>Changes the speed limit (QMP <c>block-job-set-speed</c>); raising it or removing it wakes a sleeping job.</summary>
    /// <exception cref="BlockException">The job's state refuses it, or the speed is negative.</exception>
    public void SetSpeed(long bytesPerSecond)
    {
        lock (_lock)
        {
            CheckVerb(JobVerb.SetSpeed);
            long old = _limit.Speed;
            _limit.SetSpeed(bytesPerSecond);
            if (bytesPerSecond == 0 || bytesPerSecond > old)
                WakeLocked();
        }
    }

    /// <summary>Pauses the job at its next pause point (QMP <c>block-job-pause</c>).</summary>
    /// <exception cref="BlockException">"Job is already paused", or the job's state refuses it.</exception>
    public void Pause()
    {
        lock (_lock)
        {
            CheckVerb(JobVerb.Pause);
            if (_userPaused)
                throw new BlockException(Errno.EINVAL, "Job is already paused");
            _userPaused = true;
            PauseLocked();
        }
    }

    /// <summary>Resumes a job paused by <see cref="Pause"/> or stopped by an error policy (QMP <c>block-job-resume</c>).</summary>
    /// <exception cref="BlockException">"Can't resume a job that was not paused", or the job's state refuses it.</exception>
    public void Resume()
    {
        lock (_lock)
        {
            if (!_userPaused || _pauseCount <= 0)
                throw new BlockException(Errno.EINVAL, "Can't resume a job that was not paused");
            CheckVerb(JobVerb.Resume);
            _ioStatus = BlockDeviceIoStatus.Ok;
            _userPaused = false;
            ResumeLocked();
        }
    }

    /// <summary>
    /// Cancels the job (QMP <c>block-job-cancel</c>). A user-paused job needs <paramref name="force"/>, which also
    /// resumes it; a ready mirror-like job cancelled without force converges and completes without its switch-over.
    /// </summary>
    /// <exception cref="BlockException">"The block job for device 'x' is currently paused", or the job's state refuses it.</exception>
    public void Cancel(bool force = false)
    {
        lock (_lock)
        {
            if (_userPaused && !force)
                throw new BlockException(Errno.EBUSY, $"The block job for device '{Id}' is currently paused");
            CheckVerb(JobVerb.Cancel);
            CancelLocked(force);
        }
    }

    /// <summary>Asks a ready job to finish with its switch-over (QMP <c>block-job-complete</c>).</summary>
    /// <exception cref="BlockException">The job is not ready, or it cannot be completed.</exception>
    public void Complete()
    {
        lock (_lock)
        {
            CheckVerb(JobVerb.Complete);
            if (_cancelled || !CanComplete)
                throw new BlockException(Errno.ENOTSUP, $"The active block job '{Id}' cannot be completed");
            _completeRequested = true;
            WakeLocked();
        }
    }

    /// <summary>True for jobs with a ready phase (mirror, active commit).</summary>
    protected virtual bool CanComplete => false;

    /// <summary>True once <see cref="Complete"/> was accepted.</summary>
    protected bool CompleteRequested
    {
        get
        {
            lock (_lock)
                return _completeRequested;
        }
    }

    /// <summary>True once cancelled with <c>force</c> (a ready job then gives up without converging).</summary>
    protected bool ForceCancelled
    {
        get
        {
            lock (_lock)
                return _forceCancelled;
        }
    }

    /// <summary>True while a pause (the user's, an error policy's or a drain's) waits for the job: a job with I/O in
    /// flight finishes it before it reaches its pause point, as QEMU's mirror waits for its operations.</summary>
    protected bool PauseRequested
    {
        get
        {
            lock (_lock)
                return _pauseCount > 0 && !_cancelled;
        }
    }

    /// <summary>True once the job sent <c>BLOCK_JOB_READY</c>.</summary>
    protected bool IsReady
    {
        get
        {
            lock (_lock)
                return _ready;
        }
    }

    /// <summary>
    /// Gives up every permission the job's holds take, keeping the nodes held (QEMU's mirror drops its target
    /// permissions before its switch-over, so the users it moves onto the target are not refused by the job itself).
    /// </summary>
    protected void RelaxHolds()
    {
        BlockChild[] held;
        lock (_lock)
            held = [.. _held];
        foreach (var edge in held)
            Graph.UpdateEdgePermissions(edge, BlockPermissions.None, BlockPermissions.All);
    }

    /// <summary>Runs the job; called once by the graph after it registered it.</summary>
    internal void Start()
    {
        lock (_lock)
        {
            // A wake from before the run (the speed given at start) is stale: it must not end the first sleep, which
            // pays for the first burst (QEMU's job sleeps first after its start).
            if (_wake.Task.IsCompleted)
                _wake = NewSignal();
            _pauseCount--;
            _status = JobStatus.Running;
            _busy = _pauseCount == 0;
        }
        _ = Task.Run(RunJobAsync);
    }

    /// <summary>Cancels the job when the graph closes (QEMU cancels every job at exit).</summary>
    internal void CancelForShutdown()
    {
        lock (_lock)
            CancelLocked(force: true);
    }

    /// <summary>An internal pause (a drained section begins): counted with the user's, invisible to commands.</summary>
    internal void PauseInternal()
    {
        lock (_lock)
            PauseLocked();
    }

    /// <summary>The end of an internal pause.</summary>
    internal void ResumeInternal()
    {
        lock (_lock)
            ResumeLocked();
    }

    /// <summary>
    /// Completes when the job does no I/O of its own: paused at a pause point, not started, or finishing (a finishing
    /// job makes its graph changes in a drained section of its own).
    /// </summary>
    internal Task WaitQuiescentAsync()
    {
        lock (_lock)
        {
            if (_paused || _status is JobStatus.Pending or JobStatus.Aborting or JobStatus.Concluded)
                return Task.CompletedTask;
            if (_quiescent.Task.IsCompleted)
                _quiescent = NewSignal();
            return Task.WhenAny(_quiescent.Task, _finished.Task);
        }
    }

    /// <summary>The work. Return normally when done; throw <see cref="BlockException"/> to fail. Call
    /// <see cref="PausePointAsync"/> or <see cref="RateLimitSleepAsync"/> between chunks and stop when
    /// <see cref="IsCancelled"/>.</summary>
    protected abstract ValueTask RunAsync();

    /// <summary>The graph changes of a successful job (QEMU's <c>prepare</c>/<c>commit</c>); a failure fails the job.</summary>
    protected virtual ValueTask PrepareAsync() => default;

    /// <summary>What a failed or cancelled job undoes (QEMU's <c>abort</c>).</summary>
    protected virtual ValueTask AbortAsync() => default;

    /// <summary>What every job does last, after it let go of its nodes and before it leaves the list (QEMU's <c>clean</c>).</summary>
    protected virtual ValueTask CleanAsync() => default;

    /// <summary>Sets the progress length.</summary>
    protected void SetLength(long length) => Volatile.Write(ref _len, length);

    /// <summary>Adds to the progress length.</summary>
    protected void AddLength(long bytes) => Interlocked.Add(ref _len, bytes);

    /// <summary>Adds to the progress.</summary>
    protected void AddProgress(long bytes) => Interlocked.Add(ref _offset, bytes);

    /// <summary>Counts bytes against the speed limit (only what the job copied counts, as in QEMU).</summary>
    protected void RateLimitProcessed(long bytes) => _limit.CalculateDelay(NowNs(), bytes);

    /// <summary>
    /// Holds <paramref name="node"/> for the job's duration with the given permissions (QEMU's
    /// <c>block_job_add_bdrv</c>): a conflicting user is refused, and the job's busy check refuses other jobs and
    /// commands on it.
    /// </summary>
    protected internal void Hold(BlockNode node, string role, BlockPermissions permissions, BlockPermissions shared)
    {
        var edge = Graph.AttachChild(new JobUser(this, role), "job", node, ChildRole.Image, (permissions, shared));
        lock (_lock)
            _held.Add(edge);
    }

    /// <summary>Lets go of every node held (when the job ends, after its graph changes).</summary>
    internal async ValueTask ReleaseHeldAsync()
    {
        BlockChild[] held;
        lock (_lock)
        {
            held = [.. _held];
            _held.Clear();
        }
        foreach (var edge in held)
            await Graph.DetachEdgeAsync(edge).ConfigureAwait(false);
    }

    /// <summary>Marks the job ready (<c>BLOCK_JOB_READY</c>): it may now be completed.</summary>
    protected void SetReady()
    {
        lock (_lock)
        {
            if (_ready)
                return;
            _ready = true;
            if (_status == JobStatus.Running)
                _status = JobStatus.Ready;
            if (IsInternal && !_cancelled && CanComplete)
            {
                _completeRequested = true;
                WakeLocked();
            }
        }
        RaiseEvent(new BlockJobReadyEvent(Type, Id, Length, Offset, Speed));
    }

    /// <summary>
    /// QEMU's pause point: if a pause is pending and the job is not cancelled, the job parks here (not busy) until
    /// every pause is lifted.
    /// </summary>
    protected async ValueTask PausePointAsync()
    {
        while (true)
        {
            Task resume;
            lock (_lock)
            {
                if (_pauseCount == 0 || _cancelled)
                    return;
                _paused = true;
                _busy = false;
                _status = _ready ? JobStatus.Standby : JobStatus.Paused;
                if (_resume.Task.IsCompleted)
                    _resume = NewSignal();
                resume = _resume.Task;
                _quiescent.TrySetResult();
            }
            await resume.ConfigureAwait(false);
            lock (_lock)
            {
                _paused = false;
                _busy = true;
                _status = _ready ? JobStatus.Ready : JobStatus.Running;
            }
        }
    }

    /// <summary>
    /// Sleeps for <paramref name="delayNs"/> or until woken (pause, cancel, complete, a speed change), then passes a
    /// pause point. The job is not busy while it sleeps; a delay of 0 is only a pause point, and the job stays busy.
    /// </summary>
    protected async ValueTask SleepAsync(long delayNs)
    {
        Task wake;
        bool yieldOnly = false;
        lock (_lock)
        {
            if (_cancelled)
                return;
            if (_pauseCount > 0)
                wake = Task.CompletedTask;
            else if (delayNs <= 0)
            {
                // No wait, only a pause point: the job stays busy, so that query-block-jobs never catches a job
                // between two chunks looking as if it slept (QEMU's main loop never shows that moment either).
                wake = Task.CompletedTask;
                yieldOnly = true;
            }
            else
            {
                // A wake that came since the last sleep ended (a speed change after the caller computed its delay)
                // ends this sleep at once: it is consumed below, never discarded here.
                wake = _wake.Task;
                _busy = false;
            }
        }
        if (yieldOnly)
        {
            await Task.Yield();
        }
        else if (!wake.IsCompleted)
        {
            using var timer = new CancellationTokenSource();
            var delay = Task.Delay(TimeSpan.FromTicks(Math.Min(delayNs / 100, TimeSpan.FromDays(30).Ticks)), timer.Token);
            await Task.WhenAny(wake, delay).ConfigureAwait(false);
            await timer.CancelAsync().ConfigureAwait(false);
        }
        lock (_lock)
        {
            // The wake is consumed after the sleep: what it announced (speed, pause, cancel) is read again after this.
            if (!yieldOnly && _wake.Task.IsCompleted)
                _wake = NewSignal();
            // A job woken to pause stays quiescent on its way to the pause point, as QEMU's parks at once.
            if (_pauseCount == 0 || _cancelled)
                _busy = true;
        }
        await PausePointAsync().ConfigureAwait(false);
    }

    /// <summary>
    /// QEMU's <c>block_job_ratelimit_sleep</c>: sleeps at least once, and again after an early wake-up until the bytes
    /// counted so far fit the (possibly changed) limit, unless the job is cancelled.
    /// </summary>
    protected async ValueTask RateLimitSleepAsync()
    {
        long delay;
        do
        {
            delay = _limit.CalculateDelay(NowNs(), 0);
            await SleepAsync(delay).ConfigureAwait(false);
        }
        while (delay > 0 && !IsCancelled && !CompleteRequested);
    }

    /// <summary>
    /// QEMU 7.2's mirror sleep after a burst: one sleep for what the copies so far cost, which any wake (a pause or a
    /// drained section, a speed raise, cancel, complete) ends, so the job goes on at once.
    /// </summary>
    /// <remarks>Unlike <see cref="RateLimitSleepAsync"/>, an early wake is not made up for: qemu-storage-daemon 7.2's
    /// mirror at speed 1 issues its next burst right after block-job-pause/resume, block-job-set-speed or a
    /// blockdev-snapshot-sync of another node, and goes READY then if that burst was the last.</remarks>
    protected ValueTask RateLimitSleepOnceAsync() => SleepAsync(_limit.CalculateDelay(NowNs(), 0));

    /// <summary>
    /// Applies an error policy to a failed read or write (QEMU's <c>block_job_error_action</c>): sends
    /// <c>BLOCK_JOB_ERROR</c>, and for <c>stop</c> pauses the job as if the user had (it waits for
    /// <see cref="Resume"/>, io-status <c>failed</c> or <c>nospace</c>). The caller retries after a stop, goes on after
    /// ignore, and fails after report.
    /// </summary>
    protected BlockErrorAction HandleError(BlockdevOnError policy, bool isRead, Errno error)
    {
        var action = policy switch
        {
            BlockdevOnError.Stop => BlockErrorAction.Stop,
            BlockdevOnError.Ignore => BlockErrorAction.Ignore,
            BlockdevOnError.Report => BlockErrorAction.Report,
            _ => error == Errno.ENOSPC ? BlockErrorAction.Stop : BlockErrorAction.Report,
        };
        RaiseEvent(new BlockJobErrorEvent(Id, isRead ? IoOperationType.Read : IoOperationType.Write, action));
        if (action == BlockErrorAction.Stop)
        {
            lock (_lock)
            {
                if (!_userPaused)
                {
                    PauseLocked();
                    _userPaused = true;
                }
                if (_ioStatus == BlockDeviceIoStatus.Ok)
                    _ioStatus = error == Errno.ENOSPC ? BlockDeviceIoStatus.NoSpace : BlockDeviceIoStatus.Failed;
            }
        }
        return action;
    }

    private async Task RunJobAsync()
    {
        BlockException? failure = null;
        try
        {
            await PausePointAsync().ConfigureAwait(false);
            if (!IsCancelled)
                await RunAsync().ConfigureAwait(false);
        }
        catch (BlockException e)
        {
            failure = e;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            failure = new BlockException(Errno.EIO, e.Message, e);
        }

        bool cancelled;
        lock (_lock)
        {
            cancelled = _cancelled;
            _busy = false;
            _status = failure is null && !cancelled ? JobStatus.Pending : JobStatus.Aborting;
            _quiescent.TrySetResult();
        }
        // A ready job cancelled without force converged before it stopped: it ends as completed (QEMU's mirror).
        bool cancelledEvent = cancelled && !(_ready && !_forceCancelled && failure is null);
        bool succeeded = failure is null && (!cancelled || !cancelledEvent);
        try
        {
            if (succeeded && !cancelled)
                await PrepareAsync().ConfigureAwait(false);
        }
        catch (BlockException e)
        {
            failure = e;
            succeeded = false;
        }
        if (!succeeded || cancelled)
            await SafeAsync(AbortAsync).ConfigureAwait(false);
        await SafeAsync(ReleaseHeldAsync).ConfigureAwait(false);
        await SafeAsync(CleanAsync).ConfigureAwait(false);
        lock (_lock)
            _status = JobStatus.Concluded;
        Graph.RemoveJob(this);

        // An internal job has no event to carry its error: the graph's warnings do.
        if (IsInternal && failure != null)
            Graph.Warn($"block job '{Id}': {failure.Message}");
        if (cancelledEvent)
            RaiseEvent(new BlockJobCancelledEvent(Type, Id, Length, Offset, Speed));
        else
            RaiseEvent(new BlockJobCompletedEvent(Type, Id, Length, Offset, Speed, failure is null ? null : ErrnoText.Describe(failure.Errno)));
        _finished.TrySetResult();
    }

    /// <summary>Raises a job event, unless the job is internal (QEMU's internal jobs raise none).</summary>
    private void RaiseEvent(BlockEvent e)
    {
        if (!IsInternal)
            Graph.RaiseEvent(e);
    }

    private async ValueTask SafeAsync(Func<ValueTask> step)
    {
        try
        {
            await step().ConfigureAwait(false);
        }
        catch (BlockException e)
        {
            Graph.Warn($"block job '{Id}': {e.Message}");
        }
    }

    private void CheckVerb(JobVerb verb)
    {
        bool allowed = verb switch
        {
            JobVerb.Cancel => _status is JobStatus.Created or JobStatus.Running or JobStatus.Paused or JobStatus.Ready or JobStatus.Standby or JobStatus.Pending or JobStatus.Aborting,
            JobVerb.Complete => _status == JobStatus.Ready,
            _ => _status is JobStatus.Created or JobStatus.Running or JobStatus.Paused or JobStatus.Ready or JobStatus.Standby,
        };
        if (!allowed)
        {
            throw new BlockException(Errno.EPERM,
                $"Job '{Id}' in state '{StatusName(_status)}' cannot accept command verb '{VerbName(verb)}'");
        }
    }

    private void CancelLocked(bool force)
    {
        // Once the run is over its outcome is decided: QEMU ignores a cancel of a job that has finished its work, and
        // here it must not mark a job cancelled that goes on to complete (its bitmap already consumed).
        if (_status is JobStatus.Pending or JobStatus.Aborting or JobStatus.Concluded)
            return;
        if (!_cancelled)
        {
            _cancelled = true;
            _forceCancelled = force;
        }
        else if (force)
        {
            _forceCancelled = true;
        }
        _ioStatus = BlockDeviceIoStatus.Ok;
        if (force && _userPaused)
        {
            _userPaused = false;
            ResumeLocked();
        }
        WakeLocked();
        _resume.TrySetResult();
    }

    private void PauseLocked()
    {
        _pauseCount++;
        // A job that is not busy (sleeping, waiting) parks as soon as it is woken: QEMU's state changes at once.
        if (!_busy && !_cancelled)
            _status = _status switch { JobStatus.Running => JobStatus.Paused, JobStatus.Ready => JobStatus.Standby, var s => s };
        WakeLocked();
    }

    private void ResumeLocked()
    {
        Debug.Assert(_pauseCount > 0);
        if (--_pauseCount == 0)
        {
            _status = _status switch { JobStatus.Paused => JobStatus.Running, JobStatus.Standby => JobStatus.Ready, var s => s };
            _resume.TrySetResult();
        }
    }

    private void WakeLocked() => _wake.TrySetResult();

    private static TaskCompletionSource NewSignal() => new(TaskCreationOptions.RunContinuationsAsynchronously);

    private static long NowNs() => (long)(Stopwatch.GetTimestamp() * (1_000_000_000.0 / Stopwatch.Frequency));

    /// <summary>QEMU's wire name of a job state.</summary>
    public static string StatusName(JobStatus status) => status switch
    {
        JobStatus.Created => "created",
        JobStatus.Running => "running",
        JobStatus.Paused => "paused",
        JobStatus.Ready => "ready",
        JobStatus.Standby => "standby",
        JobStatus.Pending => "pending",
        JobStatus.Aborting => "aborting",
        _ => "concluded",
    };

    private static string VerbName(JobVerb verb) => verb switch
    {
        JobVerb.Cancel => "cancel",
        JobVerb.Pause => "pause",
        JobVerb.Resume => "resume",
        JobVerb.SetSpeed => "set-speed",
        _ => "complete",
    };

    /// <summary>The job as a parent of the nodes it holds.</summary>
    private sealed class JobUser(BlockJob job, string role) : IBlockParent
    {
        public BlockJob Job => job;

        public string ParentDescription => $"block job '{job.Id}' ({role})";
    }

    /// <summary>The job holding <paramref name="edge"/>, if a job holds it.</summary>
    internal static BlockJob? HolderOf(BlockChild edge) => edge.Parent is JobUser user ? user.Job : null;
}
