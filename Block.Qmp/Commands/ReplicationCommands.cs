using System.Text.Json.Nodes;
using Block.Drivers.Replication;

namespace Block.Qmp.Commands;

/// <summary>
/// Block replication's commands, as QEMU 7.2 has them: <c>xen-set-replication</c> starts or stops replication
/// (stopping with <c>failover</c> makes the secondary take over), <c>xen-colo-do-checkpoint</c> marks a checkpoint,
/// <c>query-xen-replication-status</c> reports. Each calls the <see cref="Graph.BlockGraph"/> method that does the work.
/// </summary>
internal static class ReplicationCommands
{
    public static void Register(QmpCommandTable table)
    {
        table.Add("xen-set-replication", SetReplicationAsync);
        table.Add("xen-colo-do-checkpoint", async (c, _, _) =>
        {
            await c.Graph.ReplicationCheckpointAsync().ConfigureAwait(false);
            return null;
        });
        table.Add("query-xen-replication-status", (c, _, _) =>
        {
            var status = c.Graph.QueryReplicationStatus();
            var reply = new JsonObject { ["error"] = status.Error };
            if (status.Desc is { } desc)
                reply["desc"] = desc;
            return ValueTask.FromResult<JsonNode?>(reply);
        });
    }

    private static async ValueTask<JsonNode?> SetReplicationAsync(QmpCommandContext context, JsonObject arguments, CancellationToken cancellationToken)
    {
        bool enable = arguments.OptionalBool("enable") ?? false;
        bool primary = arguments.OptionalBool("primary") ?? false;
        bool? failover = arguments.OptionalBool("failover");
        if (enable)
        {
            // QEMU 7.2 refuses the member itself, whatever its value.
            if (failover is not null)
                throw new BlockException(Errno.EINVAL, "Parameter 'failover' is only for stopping replication");
            await context.Graph.StartReplicationAsync(primary ? ReplicationMode.Primary : ReplicationMode.Secondary).ConfigureAwait(false);
        }
        else
        {
            await context.Graph.StopReplicationAsync(failover ?? false).ConfigureAwait(false);
        }
        return null;
    }
}
