using Block.Graph;
using Block.Options;
using Block.Qapi;

namespace Block.Drivers.Quorum;

/// <summary>
/// <c>quorum</c>: N copies of one disk. Reads vote on the copies' data (or, with <c>read-pattern=fifo</c>, take the
/// first copy that answers), writes and flushes go to every copy, and a request succeeds when at least
/// <c>vote-threshold</c> copies agree. Copies that fail or lose a vote are reported (<c>QUORUM_REPORT_BAD</c>), a
/// request that cannot reach the threshold fails (<c>QUORUM_FAILURE</c>), and <c>rewrite-corrupted</c> repairs the
/// losers. Children come and go at run time through <c>x-blockdev-change</c>.
/// </summary>
/// <remarks>
/// The copies are read and written at once, so a request costs the slowest copy, not their sum. The option checks and
/// their messages are QEMU 7.2's, in its order.
/// </remarks>
public sealed class QuorumDriver : BlockDriver
{
    /// <inheritdoc />
    public override string Name => "quorum";

    /// <inheritdoc />
    public override BlockDriverKind Kind => BlockDriverKind.Filter;

    /// <inheritdoc />
    public override BlockdevOptions ParseOptions(OptionsReader reader, BlockdevOptionsParser parser)
    {
        ArgumentNullException.ThrowIfNull(reader);
        // The schema's required members (blockdev-add); an --image-opts line counts what it has, as QEMU does.
        var children = reader.RefList("children", parser);
        if (children is null && !reader.Keyval)
            throw reader.Missing("children");
        if (!reader.Keyval && !reader.Has("vote-threshold"))
            throw reader.Missing("vote-threshold");
        long threshold = reader.Int("vote-threshold") ?? 0;
        bool? blkverify = reader.Bool("blkverify");
        bool? rewrite = reader.Bool("rewrite-corrupted");
        QuorumReadPattern? pattern = null;
        bool badPattern = false;
        if (reader.Keyval && reader.String("read-pattern") is { } text)
        {
            // QEMU checks an --image-opts pattern after the threshold: the open reports it.
            badPattern = !QapiEnum<QuorumReadPattern>.TryParse(text, out var p);
            pattern = badPattern ? null : p;
        }
        else if (!reader.Keyval)
        {
            pattern = reader.Enum<QuorumReadPattern>("read-pattern");
        }
        return new BlockdevOptionsQuorum
        {
            Children = children ?? [],
            VoteThreshold = threshold,
            Blkverify = blkverify,
            RewriteCorrupted = rewrite,
            ReadPattern = pattern,
            FromKeyval = reader.Keyval,
            BadReadPattern = badPattern,
        };
    }

    /// <inheritdoc />
    public override async ValueTask<NodeDriver> OpenAsync(NodeOpenContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var o = (BlockdevOptionsQuorum)context.Options;
        if (o.Children.Count < 1)
            throw new BlockOptionsException("Number of provided children must be 1 or more");
        CheckThreshold(o.VoteThreshold, o.Children.Count);
        if (o.BadReadPattern)
            throw new BlockOptionsException("Please set read-pattern as fifo or quorum");
        var pattern = o.ReadPattern ?? QuorumReadPattern.Quorum;
        bool blkverify = false, rewrite = false;
        if (pattern == QuorumReadPattern.Quorum)
        {
            // With fifo, QEMU reads neither option.
            blkverify = o.Blkverify ?? false;
            if (blkverify && (o.Children.Count != 2 || o.VoteThreshold != 2))
                throw new BlockOptionsException("blkverify=on can only be set if there are exactly two files and vote-threshold is 2");
            rewrite = o.RewriteCorrupted ?? false;
            if (rewrite && blkverify)
                throw new BlockOptionsException("rewrite-corrupted=on cannot be used with blkverify=on");
        }

        var edges = new BlockChild[o.Children.Count];
        for (int i = 0; i < edges.Length; i++)
            edges[i] = await context.OpenChildAsync($"children.{i}", o.Children[i], ChildRole.Data, cancellationToken).ConfigureAwait(false);
        long length = edges[0].Node.Length;
        foreach (var e in edges)
        {
            if (e.Node.Length != length)
                throw new BlockException(Errno.EIO, "Could not refresh total sector count: Input/output error");
        }
        return new QuorumNodeDriver(context.Node, edges, (int)o.VoteThreshold, pattern, blkverify, rewrite);
    }

    /// <summary>QEMU's threshold rule and messages.</summary>
    private static void CheckThreshold(long threshold, int children)
    {
        if (threshold < 1)
            throw new BlockOptionsException("Parameter 'vote-threshold' expects a value >= 1");
        if (threshold > children)
            throw new BlockOptionsException("threshold may not exceed children count");
    }
}
