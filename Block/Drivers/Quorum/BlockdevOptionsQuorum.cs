using Block.Options;
using Block.Qapi;

namespace Block.Drivers.Quorum;

/// <summary>QAPI <c>BlockdevOptionsQuorum</c>: N copies of one disk, read by vote and written together.</summary>
public sealed record BlockdevOptionsQuorum : BlockdevOptions
{
    /// <summary>Creates options for the <c>quorum</c> driver.</summary>
    [System.Diagnostics.CodeAnalysis.SetsRequiredMembers]
    public BlockdevOptionsQuorum()
    {
        Driver = "quorum";
        Children = [];
    }

    /// <summary>The copies, which become the children <c>children.0</c>, <c>children.1</c>…</summary>
    public required IReadOnlyList<BlockdevRef> Children { get; init; }

    /// <summary>How many children must agree (return the same data, or succeed) for a request to succeed.</summary>
    public long VoteThreshold { get; init; }

    /// <summary>
    /// With exactly two children and a threshold of 2, a read whose copies differ stops with a mismatch instead of an
    /// error (QEMU's <c>blkverify</c> mode). Null when not given.
    /// </summary>
    public bool? Blkverify { get; init; }

    /// <summary>Rewrites the children that lost a vote with the winning data. Null when not given.</summary>
    public bool? RewriteCorrupted { get; init; }

    /// <summary>How reads are served. Null when not given (a vote).</summary>
    public QuorumReadPattern? ReadPattern { get; init; }

    /// <summary>
    /// True when the options came from a key=value line (<c>--image-opts</c>): QEMU keeps them as the strings they
    /// were, and its <c>json:</c> name shows them so.
    /// </summary>
    internal bool FromKeyval { get; init; }

    /// <summary>True when a key=value line named a read pattern that does not exist (the open refuses it).</summary>
    internal bool BadReadPattern { get; init; }
}
