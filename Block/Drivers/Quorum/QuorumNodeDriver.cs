using System.Buffers;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.Json.Nodes;
using Block.Drivers.Blkverify;
using Block.Events;
using Block.Graph;
using Block.Io;
using Block.Qapi;

namespace Block.Drivers.Quorum;

/// <summary>
/// One quorum node: the vote on reads, the fan-out of writes and flushes, the events, and the children that
/// <c>x-blockdev-change</c> adds and removes.
/// </summary>
/// <remarks>
/// The children array is replaced, never changed in place, and only in a drained section, so requests read it without
/// a lock. A read with the vote fills the caller's buffer from the first child and a slot of one pooled array from each
/// other child, and compares them byte for byte: equal copies, the common case, cost no hashing and no copy. Cached
/// reads that agree complete synchronously: a 3-way quorum's 4 KiB read then costs its children's reads, the two
/// compares and one array rental (3.2× one child's time; see bench/README.md).
/// </remarks>
internal sealed class QuorumNodeDriver : NodeDriver
{
    private readonly int _threshold;
    private readonly QuorumReadPattern _pattern;
    private readonly bool _blkverify;
    private readonly bool _rewriteCorrupted;
    private BlockChild[] _children;
    private int _nextIndex;

    public QuorumNodeDriver(BlockNode node, BlockChild[] children, int threshold, QuorumReadPattern pattern, bool blkverify, bool rewriteCorrupted)
        : base(node)
    {
        _children = children;
        _nextIndex = children.Length;
        _threshold = threshold;
        _pattern = pattern;
        _blkverify = blkverify;
        _rewriteCorrupted = rewriteCorrupted;
    }

    public override long Length => Volatile.Read(ref _children)[0].Node.Length;

    public override RequestFlags SupportedWriteFlags => RequestFlags.Fua;

    public override RequestFlags SupportedZeroFlags => RequestFlags.MayUnmap;

    // QEMU sums what its children take on disk.
    public override long? AllocatedSize
    {
        get
        {
            long sum = 0;
            foreach (var c in Volatile.Read(ref _children))
            {
                if (c.Node.AllocatedSize is not { } size)
                    return null;
                sum += size;
            }
            return sum;
        }
    }

    public override bool HasDriverInfo => false;

    public override bool FlushesChildren => true;

    /// <summary>QEMU's <c>json:{…}</c> name: the children's own options, then the quorum options that were given.</summary>
    public override string Filename
    {
        get
        {
            var o = (BlockdevOptionsQuorum)Node.Options;
            var children = new JsonArray();
            foreach (var c in Volatile.Read(ref _children))
                children.Add((JsonNode)OpenOptionsOf(c.Node));
            var json = new JsonObject();
            if (o.ReadPattern is { } pattern)
                json["read-pattern"] = QapiEnum<QuorumReadPattern>.ToWire(pattern);
            json["children"] = children;
            json["driver"] = "quorum";
            if (o.Blkverify is { } blkverify)
                json["blkverify"] = o.FromKeyval ? (blkverify ? "on" : "off") : blkverify;
            if (o.RewriteCorrupted is { } rewrite)
                json["rewrite-corrupted"] = o.FromKeyval ? (rewrite ? "on" : "off") : rewrite;
            json["vote-threshold"] = o.FromKeyval ? o.VoteThreshold.ToString(CultureInfo.InvariantCulture) : o.VoteThreshold;
            return "json:" + QemuJson.Compact(json);
        }
    }

    // ---- reads ---------------------------------------------------------------------------------------------------

    public override ValueTask ReadAsync(long offset, IoVector buffers, RequestFlags flags) =>
        _pattern == QuorumReadPattern.Fifo ? ReadFifoAsync(offset, buffers, flags) : ReadVote(offset, buffers, flags);

    /// <summary>The children in order until one succeeds; each failure is reported, and the last one's error stands.</summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ReadFifoAsync(long offset, IoVector buffers, RequestFlags flags)
    {
        var children = Volatile.Read(ref _children);
        BlockException? last = null;
        foreach (var c in children)
        {
            try
            {
                await c.Node.ReadAsync(offset, buffers, flags).ConfigureAwait(false);
                return;
            }
            catch (BlockException e)
            {
                ReportBad(QuorumOpType.Read, e, c.Node, offset, buffers.Length);
                last = e;
            }
        }
        throw last!;
    }

    /// <summary>
    /// The vote: child 0 reads into the caller's buffer, the others into slots of one pooled array, all at once. When
    /// every child answers at once (cached reads) and the answers agree, the read ends here, without an async state
    /// machine or any array but the slots; anything else goes on in <see cref="ReadVoteSlowAsync"/>.
    /// </summary>
    private ValueTask ReadVote(long offset, IoVector buffers, RequestFlags flags)
    {
        var children = Volatile.Read(ref _children);
        int n = children.Length, length = buffers.Length;
        var copies = ArrayPool<byte>.Shared.Rent((n - 1) * length);
        if (n > ChildReads.Capacity)
        {
            var all = ArrayPool<ValueTask>.Shared.Rent(n);
            for (int i = 0; i < n; i++)
                all[i] = ReadChild(children, i, offset, buffers, copies, flags);
            return ReadVoteSlowAsync(offset, buffers, flags, children, copies, all);
        }
        var reads = new ChildReads();
        bool allDone = true;
        for (int i = 0; i < n; i++)
        {
            reads[i] = ReadChild(children, i, offset, buffers, copies, flags);
            allDone &= reads[i].IsCompletedSuccessfully;
        }
        if (!allDone)
        {
            var pending = ArrayPool<ValueTask>.Shared.Rent(n);
            for (int i = 0; i < n; i++)
                pending[i] = reads[i];
            return ReadVoteSlowAsync(offset, buffers, flags, children, copies, pending);
        }
        for (int i = 0; i < n; i++)
            reads[i].GetAwaiter().GetResult();
        if (n >= _threshold && AllEqual(buffers, copies, errors: default, n))
        {
            ArrayPool<byte>.Shared.Return(copies);
            return default;
        }
        return ReadVoteSlowAsync(offset, buffers, flags, children, copies, reads: null);
    }

    private static ValueTask ReadChild(BlockChild[] children, int i, long offset, IoVector buffers, byte[] copies, RequestFlags flags) =>
        i == 0
            ? children[0].Node.ReadAsync(offset, buffers, flags)
            : children[i].Node.ReadAsync(offset, copies.AsMemory((i - 1) * buffers.Length, buffers.Length), flags);

    /// <summary>Child <paramref name="i"/>'s answer (<paramref name="i"/> &gt; 0) in the slots.</summary>
    private static Span<byte> Copy(byte[] copies, int i, int length) => copies.AsSpan((i - 1) * length, length);

    /// <summary>
    /// The rest of a vote: waits for the children's <paramref name="reads"/> (null: all succeeded already), then
    /// counts answers and versions. Owns and returns <paramref name="copies"/> and <paramref name="reads"/>.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask ReadVoteSlowAsync(long offset, IoVector buffers, RequestFlags flags, BlockChild[] children, byte[] copies,
        ValueTask[]? reads)
    {
        int n = children.Length, length = buffers.Length;
        var errors = ArrayPool<BlockException?>.Shared.Rent(n);
        try
        {
            int successes = n;
            if (reads != null)
                successes = await AwaitAllAsync(QuorumOpType.Read, children, reads, errors, offset, length).ConfigureAwait(false);
            else
                Array.Clear(errors, 0, n);
            if (successes < _threshold)
            {
                ReportFailure(offset, length);
                throw VoteError(errors.AsSpan(0, n));
            }
            if (AllEqual(buffers, copies, errors, n))
            {
                if (errors[0] != null)
                    buffers.CopyFrom(Copy(copies, FirstAnswer(errors, n), length));
                return;
            }
            if (_blkverify)
                throw Mismatch(offset, buffers, Copy(copies, 1, length));
            await VoteAsync(offset, buffers, flags, children, copies, errors).ConfigureAwait(false);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(copies);
            ArrayPool<BlockException?>.Shared.Return(errors, clearArray: true);
            if (reads != null)
                ArrayPool<ValueTask>.Shared.Return(reads, clearArray: true);
        }
    }

    /// <summary>Room for the reads of a quorum's children on the stack: QEMU's quorums have 2 to 5 children.</summary>
    [InlineArray(Capacity)]
    private struct ChildReads
    {
        public const int Capacity = 8;
        private ValueTask _element;
    }

    private static int FirstAnswer(BlockException?[] errors, int n)
    {
        int i = 0;
        while (i < n && errors[i] != null)
            i++;
        return i;
    }

    /// <summary>True if every child that answered (all of them with no <paramref name="errors"/>) returned the same bytes.</summary>
    private static bool AllEqual(IoVector buffers, byte[] copies, BlockException?[]? errors, int n)
    {
        int length = buffers.Length;
        int first = -1;
        for (int i = 0; i < n; i++)
        {
            if (errors?[i] != null)
                continue;
            if (first < 0)
            {
                first = i;
                continue;
            }
            if (!Same(buffers, copies, first, i, length))
                return false;
        }
        return true;
    }

    /// <summary>
    /// Groups the answers into versions of the data; the version most children returned wins (on a tie, the version
    /// first seen last, as in QEMU). Below the threshold the read fails; otherwise the caller gets the winner, the
    /// losers are reported, and with <c>rewrite-corrupted</c> they are written over with it.
    /// </summary>
    private async ValueTask VoteAsync(long offset, IoVector buffers, RequestFlags flags, BlockChild[] children, byte[] copies,
        BlockException?[] errors)
    {
        int n = children.Length, length = buffers.Length;
        // version[i]: the first child whose answer equals child i's (-1 for a failed child).
        var version = ArrayPool<int>.Shared.Rent(n);
        try
        {
            int winner = -1, winnerVotes = 0;
            for (int i = 0; i < n; i++)
            {
                version[i] = -1;
                if (errors[i] != null)
                    continue;
                version[i] = i;
                for (int j = 0; j < i; j++)
                {
                    if (version[j] == j && Same(buffers, copies, j, i, length))
                    {
                        version[i] = j;
                        break;
                    }
                }
            }
            for (int i = 0; i < n; i++)
            {
                if (version[i] != i)
                    continue;
                int votes = 0;
                for (int j = i; j < n; j++)
                {
                    if (version[j] == i)
                        votes++;
                }
                if (votes >= winnerVotes)
                    (winner, winnerVotes) = (i, votes);
            }
            if (winnerVotes < _threshold)
            {
                ReportFailure(offset, length);
                throw new BlockException(Errno.EIO, "Quorum: no version of the data reached the vote threshold");
            }
            if (winner != 0)
                buffers.CopyFrom(Copy(copies, winner, length));
            for (int i = 0; i < n; i++)
            {
                if (version[i] >= 0 && version[i] != winner)
                    ReportBad(QuorumOpType.Read, null, children[i].Node, offset, length);
            }
            if (!_rewriteCorrupted)
                return;
            for (int i = 0; i < n; i++)
            {
                if (version[i] < 0 || version[i] == winner)
                    continue;
                try
                {
                    await children[i].Node.WriteAsync(offset, buffers, flags & RequestFlags.Fua).ConfigureAwait(false);
                }
                catch (BlockException)
                {
                    // The read has its answer; a copy that cannot be repaired stays reported.
                }
            }
        }
        finally
        {
            ArrayPool<int>.Shared.Return(version);
        }
    }

    private static bool Same(IoVector buffers, byte[] copies, int a, int b, int length) =>
        a == 0 ? SameBytes(buffers, Copy(copies, b, length)) : Copy(copies, a, length).SequenceEqual(Copy(copies, b, length));

    private static bool SameBytes(IoVector buffers, ReadOnlySpan<byte> copy)
    {
        int done = 0;
        foreach (var segment in buffers)
        {
            if (!segment.Span.SequenceEqual(copy.Slice(done, segment.Length)))
                return false;
            done += segment.Length;
        }
        return true;
    }

    /// <summary>blkverify mode: the two copies differ, which QEMU treats as fatal; the message names the first byte.</summary>
    private static BlkverifyMismatchException Mismatch(long offset, IoVector buffers, ReadOnlySpan<byte> copy)
    {
        int done = 0;
        foreach (var segment in buffers)
        {
            int same = segment.Span.CommonPrefixLength(copy.Slice(done, segment.Length));
            if (same < segment.Length)
                return new BlkverifyMismatchException($"quorum: offset={offset} bytes={buffers.Length} contents mismatch at offset {offset + done + same}");
            done += segment.Length;
        }
        throw new InvalidOperationException("the copies were found different but are equal");
    }

    // ---- writes and flushes --------------------------------------------------------------------------------------

    public override ValueTask WriteAsync(long offset, IoVector buffers, RequestFlags flags) =>
        FanOutAsync(QuorumOpType.Write, offset, buffers.Length, buffers, flags, zeroes: false);

    public override ValueTask WriteZeroesAsync(long offset, long length, RequestFlags flags) =>
        FanOutAsync(QuorumOpType.Write, offset, length, default, flags, zeroes: true);

    // QEMU 7.2's quorum has no discard: the request succeeds and the copies keep their data.
    public override ValueTask DiscardAsync(long offset, long length) => default;

    public override ValueTask FlushToOsAsync() => FanOutAsync(QuorumOpType.Flush, 0, 0, default, RequestFlags.None, zeroes: false);

    /// <summary>
    /// One request to every child at once. Each failure is reported; with fewer successes than the threshold the
    /// request fails with the most common error (a failed write also raises <c>QUORUM_FAILURE</c>).
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask FanOutAsync(QuorumOpType type, long offset, long length, IoVector buffers, RequestFlags flags, bool zeroes)
    {
        var children = Volatile.Read(ref _children);
        int n = children.Length;
        var errors = ArrayPool<BlockException?>.Shared.Rent(n);
        var requests = ArrayPool<ValueTask>.Shared.Rent(n);
        try
        {
            for (int i = 0; i < n; i++)
            {
                var child = children[i].Node;
                requests[i] = type == QuorumOpType.Flush ? child.FlushAsync()
                    : zeroes ? child.WriteZeroesAsync(offset, length, flags)
                    : child.WriteAsync(offset, buffers, flags);
            }
            int successes = await AwaitAllAsync(type, children, requests, errors, offset, length).ConfigureAwait(false);
            if (successes >= _threshold)
                return;
            if (type != QuorumOpType.Flush)
                ReportFailure(offset, length);
            throw VoteError(errors.AsSpan(0, n));
        }
        finally
        {
            ArrayPool<BlockException?>.Shared.Return(errors, clearArray: true);
            ArrayPool<ValueTask>.Shared.Return(requests, clearArray: true);
        }
    }

    /// <summary>
    /// Waits for every child's request (none is left in flight), keeps each failure in <paramref name="errors"/>,
    /// reports them in child order, and returns how many succeeded.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> AwaitAllAsync(QuorumOpType type, BlockChild[] children, ValueTask[] requests, BlockException?[] errors,
        long offset, long length)
    {
        int successes = 0;
        for (int i = 0; i < children.Length; i++)
        {
            errors[i] = null;
            try
            {
                await requests[i].ConfigureAwait(false);
                successes++;
            }
            catch (BlockException e)
            {
                errors[i] = e;
            }
        }
        for (int i = 0; i < children.Length; i++)
        {
            if (errors[i] is { } e)
                ReportBad(type, e, children[i].Node, offset, length);
        }
        return successes;
    }

    /// <summary>The most common error among the children; on a tie, the one first seen last (QEMU's vote).</summary>
    private static BlockException VoteError(ReadOnlySpan<BlockException?> errors)
    {
        BlockException? winner = null;
        int winnerVotes = 0;
        for (int i = 0; i < errors.Length; i++)
        {
            if (errors[i] is not { } e)
                continue;
            bool seen = false;
            for (int j = 0; j < i && !seen; j++)
                seen = errors[j]?.Errno == e.Errno;
            if (seen)
                continue;
            int votes = 0;
            for (int j = i; j < errors.Length; j++)
            {
                if (errors[j]?.Errno == e.Errno)
                    votes++;
            }
            if (votes >= winnerVotes)
                (winner, winnerVotes) = (e, votes);
        }
        return winner!;
    }

    // ---- status --------------------------------------------------------------------------------------------------

    /// <summary>Zeroes where every child reads zeroes, data where any child holds data; the run ends where any child's does.</summary>
    public override async ValueTask<BlockStatus> GetBlockStatusAsync(long offset, long length, bool wantZero)
    {
        bool zero = true;
        long run = length;
        foreach (var c in Volatile.Read(ref _children))
        {
            BlockStatus status;
            try
            {
                status = await c.Node.GetBlockStatusAsync(offset, length, wantZero).ConfigureAwait(false);
            }
            catch (BlockException e)
            {
                ReportBad(QuorumOpType.Read, e, c.Node, offset, length);
                return new BlockStatus(BlockStatusFlags.Data | BlockStatusFlags.Allocated, length);
            }
            zero &= status.Has(BlockStatusFlags.Zero);
            run = Math.Min(run, Math.Max(1, status.Bytes));
        }
        return new BlockStatus((zero ? BlockStatusFlags.Zero : BlockStatusFlags.Data) | BlockStatusFlags.Allocated, run);
    }

    // ---- children at run time ------------------------------------------------------------------------------------

    public override bool CanAddChild => true;

    public override bool CanRemoveChild => true;

    public override ValueTask AddChildAsync(BlockNode child, CancellationToken cancellationToken)
    {
        if (_blkverify)
            throw new BlockException(Errno.ENOTSUP, "Cannot add a child to a quorum in blkverify mode");
        if (_nextIndex == int.MaxValue)
            throw new BlockException(Errno.EINVAL, "Too many children");
        var edge = Node.Graph.AttachChild(Node, $"children.{_nextIndex}", child, ChildRole.Data);
        _nextIndex++;
        Volatile.Write(ref _children, [.. _children, edge]);
        return default;
    }

    public override async ValueTask RemoveChildAsync(BlockChild child, CancellationToken cancellationToken)
    {
        var children = _children;
        if (Array.IndexOf(children, child) < 0)
            throw new BlockException(Errno.ENOENT, $"Node '{Node.NodeName}' does not have child '{child.Name}'");
        if (children.Length <= _threshold)
            throw new BlockException(Errno.EINVAL, $"The number of children cannot be lower than the vote threshold {_threshold}");
        // The newest child's index is given out again, as QEMU does.
        if (child.Name == $"children.{_nextIndex - 1}")
            _nextIndex--;
        Volatile.Write(ref _children, [.. children.Where(c => c != child)]);
        await Node.Graph.DetachEdgeAsync(child).ConfigureAwait(false);
    }

    // ---- events --------------------------------------------------------------------------------------------------

    private void ReportBad(QuorumOpType type, BlockException? error, BlockNode child, long offset, long length)
    {
        var (sector, count) = type == QuorumOpType.Flush ? (0L, 0L) : Sectors(offset, length);
        Node.Graph.RaiseEvent(new QuorumReportBadEvent(type, error is null ? null : ErrnoText.Describe(error.Errno), child.NodeName, sector, count));
    }

    private void ReportFailure(long offset, long length)
    {
        var (sector, count) = Sectors(offset, length);
        Node.Graph.RaiseEvent(new QuorumFailureEvent(BlockGraph.DeviceOrNodeName(Node), sector, count));
    }

    private static (long Sector, long Count) Sectors(long offset, long length) =>
        (offset / 512, (offset + length + 511) / 512 - offset / 512);
}
