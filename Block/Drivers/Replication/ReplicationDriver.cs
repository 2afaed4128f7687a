using Block.Graph;
using Block.Options;

namespace Block.Drivers.Replication;

/// <summary>
/// <c>replication</c>: the block half of COLO (QEMU's block replication). On the primary it forwards the guest's
/// writes to the secondary through its file, an NBD client, as the second child of a <c>fifo</c> quorum; on the
/// secondary it sits above an active disk, a hidden disk and the secondary disk, and keeps what the secondary guest
/// writes since the last checkpoint apart from what the primary writes. A graph's replication nodes are started,
/// checkpointed and stopped together (<see cref="BlockGraph.StartReplicationAsync"/>).
/// </summary>
/// <remarks>
/// The option checks and their words are QEMU 7.2's: a missing <c>mode</c> or <c>file</c> is a schema error; the
/// secondary needs <c>top-id</c> and the primary refuses it, checked after the file opens, as QEMU checks them.
/// </remarks>
public sealed class ReplicationDriver : BlockDriver
{
    /// <inheritdoc />
    public override string Name => "replication";

    /// <inheritdoc />
    public override BlockDriverKind Kind => BlockDriverKind.Filter;

    /// <inheritdoc />
    public override BlockdevOptions ParseOptions(OptionsReader reader, BlockdevOptionsParser parser)
    {
        ArgumentNullException.ThrowIfNull(reader);
        // The schema's base members come first: a node with neither names 'file' missing.
        var file = reader.RequiredRef("file", parser);
        var mode = reader.Enum<ReplicationMode>("mode") ?? throw reader.Missing("mode");
        return new BlockdevOptionsReplication
        {
            File = file,
            Mode = mode,
            TopId = reader.String("top-id"),
        };
    }

    /// <inheritdoc />
    public override async ValueTask<NodeDriver> OpenAsync(NodeOpenContext context, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(context);
        var o = (BlockdevOptionsReplication)context.Options;
        var file = await context.OpenChildAsync("file", o.File, ChildRole.Filtered | ChildRole.Primary, cancellationToken).ConfigureAwait(false);
        if (o.Mode == ReplicationMode.Secondary && o.TopId is null)
            throw new BlockOptionsException("Missing the option top-id");
        if (o.Mode == ReplicationMode.Primary && o.TopId is not null)
            throw new BlockOptionsException("The primary side does not support option top-id");
        var driver = new ReplicationNodeDriver(context.Node, file, o.Mode, o.TopId);
        context.Graph.RegisterReplication(driver);
        return driver;
    }
}
