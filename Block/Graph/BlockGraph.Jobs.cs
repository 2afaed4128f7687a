using Block.Jobs;
using Block.Options;
using Block.Qapi;

namespace Block.Graph;

/// <summary>
/// The graph's block jobs: the list, lookups by id with QEMU's errors, the busy check on held nodes, the job
/// commands (<c>block-stream</c>…) as methods, and the graph changes jobs make when they finish.
/// </summary>
public sealed partial class BlockGraph
{
    private readonly List<BlockJob> _jobs = [];

    /// <summary>The running jobs, newest first (the order of <c>query-block-jobs</c>); internal jobs are not among them.</summary>
    public IReadOnlyList<BlockJob> Jobs
    {
        get
        {
            lock (_jobs)
                return [.. Enumerable.Reverse(_jobs).Where(j => !j.IsInternal)];
        }
    }

    /// <summary>QMP <c>query-block-jobs</c>: every job, newest first.</summary>
    public IReadOnlyList<BlockJobInfo> QueryBlockJobs() => [.. Jobs.Select(j => j.GetInfo())];

    /// <summary>The job with id <paramref name="id"/> (QEMU's <c>find_block_job</c>).</summary>
    /// <exception cref="BlockNotFoundException">"Block job 'x' not found", class DeviceNotActive.</exception>
    public BlockJob FindJob(string id)
    {
        ArgumentNullException.ThrowIfNull(id);
        lock (_jobs)
        {
            return _jobs.Find(j => j.Id == id && !j.IsInternal)
                ?? throw new BlockNotFoundException($"Block job '{id}' not found", QmpErrorClass.DeviceNotActive);
        }
    }

    /// <summary>
    /// Streams the images between <paramref name="device"/>'s node and a base into it, live (QMP <c>block-stream</c>):
    /// every range the node lacks and an image above the base holds is copied up, serialised against guest writes;
    /// at the end the base becomes the node's backing node (none without a base), the images between leave the chain,
    /// and the image's backing file name is rewritten.
    /// </summary>
    /// <param name="jobId">The job id, or null for the name of the device on the node.</param>
    /// <param name="device">A backend or node name (QEMU's device-or-node lookup).</param>
    /// <param name="base">The base by file name, as the images in the chain name it.</param>
    /// <param name="baseNode">The base by node name.</param>
    /// <param name="backingFile">The backing file name to record (default: the base's name as given or its file name).</param>
    /// <param name="speed">Bytes per second, 0 for no limit.</param>
    /// <param name="onError">What a read error does.</param>
    /// <returns>The started job.</returns>
    /// <exception cref="BlockException">QEMU 7.2's errors, in its order: the lookup's, "'base' and 'base-node' cannot be
    /// specified at the same time", "Can't find 'x' in the backing chain", "Node 'x' is not a backing image of 'y'",
    /// "Node 'x' is busy: …", "backing file specified, but streaming the entire chain", then the job id's and the speed's.</exception>
    public async ValueTask<BlockJob> StreamAsync(string? jobId, string device, string? @base = null, string? baseNode = null,
        string? backingFile = null, long speed = 0, BlockdevOnError onError = BlockdevOnError.Report)
    {
        var top = LookupNode(device, device);
        if (@base != null && baseNode != null)
            throw new BlockOptionsException("'base' and 'base-node' cannot be specified at the same time");
        BlockNode? baseBs = null;
        string? baseName = null;
        if (@base != null)
        {
            baseBs = top.FindBackingImage(@base) ?? throw new BlockException(Errno.EINVAL, $"Can't find '{@base}' in the backing chain");
            baseName = @base;
        }
        if (baseNode != null)
        {
            baseBs = LookupNode(null, baseNode);
            if (ReferenceEquals(baseBs, top) || !InChain(top, baseBs))
                throw new BlockException(Errno.EINVAL, $"Node '{baseNode}' is not a backing image of '{device}'");
            baseName = baseBs.Filename;
        }
        for (var n = top; n != null && !ReferenceEquals(n, baseBs); n = ChainNext(n))
            ThrowIfBusy(n);
        if (baseBs is null && backingFile != null)
            throw new BlockOptionsException("backing file specified, but streaming the entire chain");
        baseName = backingFile ?? baseName;

        string id = ResolveJobId(jobId, top);
        var job = new StreamJob(this, id, top, baseBs, baseName, onError);
        job.SetSpeed(speed);
        await job.SetUpAsync().ConfigureAwait(false);
        StartJob(job);
        return job;
    }

    /// <summary>
    /// Commits an image into a base, live (QMP <c>block-commit</c>): below the active layer see <see cref="CommitJob"/>;
    /// the active layer itself is mirrored into the base (<see cref="MirrorJob"/>).
    /// </summary>
    /// <param name="jobId">The job id, or null for the name of the device.</param>
    /// <param name="device">The root of the chain: a backend or a node no other node uses.</param>
    /// <param name="base">The base by file name as the chain names it; null for the bottom of the chain.</param>
    /// <param name="top">The image to commit by file name; null for the active layer.</param>
    /// <param name="backingFile">The backing file name to record in the top's overlay (default: the base's file name).</param>
    /// <param name="speed">Bytes per second, 0 for no limit.</param>
    /// <param name="onError">What a read or write error does.</param>
    /// <returns>The started job.</returns>
    /// <exception cref="BlockException">QEMU 7.2's errors, in its order: "Device 'x' not found" (DeviceNotFound), "Need
    /// a root block node", "Node 'x' is busy: …", "Top image file x not found", "Can't find 'x' in the backing chain",
    /// "cannot commit an image into itself", "'backing-file' specified, but 'top' is
    /// the active layer", then the job id's and the speed's. With <paramref name="top"/> the active layer this is QEMU's
    /// active commit, a <see cref="MirrorJob"/> into the base that needs <c>block-job-complete</c>.</exception>
    public async ValueTask<BlockJob> CommitAsync(string? jobId, string device, string? @base = null, string? top = null,
        string? backingFile = null, long speed = 0, BlockdevOnError onError = BlockdevOnError.Report)
    {
        BlockNode bs;
        try
        {
            bs = LookupRootNode(device);
        }
        catch (BlockNotFoundException)
        {
            throw new BlockNotFoundException($"Device '{device}' not found", QmpErrorClass.DeviceNotFound);
        }
        ThrowIfBusy(bs);
        var topBs = top is null || bs.Filename == top ? bs : bs.FindBackingImage(top);
        if (topBs is null)
            throw new BlockException(Errno.ENOENT, $"Top image file {top} not found");
        BlockNode? baseBs;
        if (@base != null)
        {
            baseBs = topBs.FindBackingImage(@base) ?? throw new BlockException(Errno.ENOENT, $"Can't find '{@base}' in the backing chain");
        }
        else
        {
            // The bottom of the chain, which is the top itself when it has no backing node (QEMU's bdrv_find_base).
            baseBs = topBs;
            while (baseBs.Backing?.Node is { } below)
                baseBs = below;
        }
        if (ReferenceEquals(topBs, baseBs))
            throw new BlockException(Errno.EINVAL, "cannot commit an image into itself");
        for (var n = topBs; n != null && !ReferenceEquals(n, baseBs); n = ChainNext(n))
            ThrowIfBusy(n);
        if (ReferenceEquals(topBs, bs))
        {
            if (backingFile != null)
                throw new BlockOptionsException("'backing-file' specified, but 'top' is the active layer");
            return await ActiveCommitAsync(jobId, bs, baseBs, speed, onError).ConfigureAwait(false);
        }
        BlockNode overlay = bs;
        while (!ReferenceEquals(overlay.Backing?.Node, topBs))
            overlay = overlay.Backing!.Node;
        ThrowIfBusy(overlay);

        string id = ResolveJobId(jobId, bs);
        var job = new CommitJob(this, id, topBs, baseBs, overlay, backingFile, onError);
        job.SetSpeed(speed);
        await job.SetUpAsync().ConfigureAwait(false);
        StartJob(job);
        return job;
    }

    /// <summary>
    /// QEMU's op blocker for jobs: a node a job holds refuses another job ("Node 'x' is busy: block device is in use by
    /// block job: stream").
    /// </summary>
    /// <exception cref="BlockException">The node is held by a job.</exception>
    public void ThrowIfBusy(BlockNode node)
    {
        ArgumentNullException.ThrowIfNull(node);
        foreach (var edge in node.Parents)
        {
            if (BlockJob.HolderOf(edge) is { } job)
                throw new BlockException(Errno.EBUSY, $"Node '{DeviceOrNodeName(node)}' is busy: block device is in use by block job: {job.Type}");
        }
    }

    /// <summary>
    /// The id a new job gets (QEMU 7.2's <c>job_create</c>): the given one, else the name of the device on its node
    /// (empty without one); it must be well formed and unused.
    /// </summary>
    /// <exception cref="BlockException">"Invalid job ID 'x'", "Job ID 'x' already in use".</exception>
    internal string ResolveJobId(string? jobId, BlockNode node)
    {
        string id = jobId ?? DeviceName(node);
        if (!NodeNames.IsWellFormed(id))
            throw new BlockOptionsException($"Invalid job ID '{id}'");
        lock (_jobs)
        {
            if (_jobs.Exists(j => j.Id == id && !j.IsInternal))
                throw new BlockException(Errno.EEXIST, $"Job ID '{id}' already in use");
        }
        return id;
    }

    /// <summary>Adds a job to the list and starts it.</summary>
    internal void StartJob(BlockJob job)
    {
        lock (_jobs)
            _jobs.Add(job);
        job.Start();
    }

    /// <summary>Takes a finished job off the list.</summary>
    internal void RemoveJob(BlockJob job)
    {
        lock (_jobs)
            _jobs.Remove(job);
    }

    /// <summary>Detaches an edge (a job's hold on a node) and closes the node if nothing else holds it.</summary>
    internal ValueTask DetachEdgeAsync(BlockChild edge) => DetachAsync(edge);

    /// <summary>
    /// Makes <paramref name="newBacking"/> the backing node of <paramref name="node"/> (null: none), as a finishing
    /// job does; call drained. The old backing node is closed if nothing else holds it.
    /// </summary>
    internal async ValueTask SetBackingNodeAsync(BlockNode node, BlockNode? newBacking)
    {
        var edge = node.Backing;
        if (edge is null)
        {
            if (newBacking != null)
                AttachChild(node, "backing", newBacking, ChildRole.Cow);
            return;
        }
        var old = edge.Node;
        if (ReferenceEquals(old, newBacking))
            return;
        if (newBacking is null)
        {
            await DetachAsync(edge).ConfigureAwait(false);
            return;
        }
        MoveEdge(edge, old, newBacking);
        try
        {
            RefreshPermissions(newBacking);
        }
        catch
        {
            MoveEdge(edge, newBacking, old);
            throw;
        }
        try
        {
            RefreshPermissions(old);
        }
        catch (BlockException)
        {
            // Losing a user only relaxes the old node's permissions.
        }
        await ReleaseNodeAsync(old).ConfigureAwait(false);
    }

    /// <summary>
    /// Pauses the jobs a drained section reaches: all of them, or with <paramref name="scope"/> those holding it or a
    /// node above it. The list is what the section resumes.
    /// </summary>
    private BlockJob[] PauseJobsForDrain(BlockNode? scope)
    {
        BlockJob[] jobs;
        lock (_jobs)
            jobs = [.. _jobs];
        if (scope != null)
        {
            var reached = new HashSet<BlockJob>();
            var seen = new HashSet<BlockNode> { scope };
            var pending = new Stack<BlockNode>([scope]);
            while (pending.Count > 0)
            {
                foreach (var edge in pending.Pop().Parents)
                {
                    if (BlockJob.HolderOf(edge) is { } holder)
                        reached.Add(holder);
                    else if (edge.Parent is BlockNode parent && seen.Add(parent))
                        pending.Push(parent);
                }
            }
            jobs = [.. jobs.Where(reached.Contains)];
        }
        foreach (var job in jobs)
            job.PauseInternal();
        return jobs;
    }

    /// <summary>Cancels every job and waits for them (the graph is closing; QEMU cancels jobs at exit).</summary>
    private async ValueTask CancelJobsAsync()
    {
        foreach (var job in Jobs)
        {
            job.CancelForShutdown();
            await job.Completion.ConfigureAwait(false);
        }
    }

    /// <summary>The name of the newest named backend on <paramref name="node"/>, or "".</summary>
    private static string DeviceName(BlockNode node)
    {
        var parents = node.Parents;
        for (int i = parents.Count - 1; i >= 0; i--)
        {
            if (parents[i].Parent is BlockBackend { Name.Length: > 0 } backend)
                return backend.Name;
        }
        return string.Empty;
    }

    private static bool InChain(BlockNode top, BlockNode node)
    {
        for (var n = ChainNext(top); n != null; n = ChainNext(n))
        {
            if (ReferenceEquals(n, node))
                return true;
        }
        return false;
    }
}
