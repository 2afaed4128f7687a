using System.Text.Json.Nodes;
using Block.Throttle;

namespace Block.Qmp.Commands;

/// <summary>The schema's device commands (throttling, trays), each decoding its arguments and calling the library.</summary>
internal static class DeviceCommands
{
    public static void Register(QmpCommandTable table)
    {
        table.Add("block_set_io_throttle", SetIoThrottle);
        table.Add("blockdev-open-tray", (c, a, _) =>
        {
            c.Graph.OpenTray(a.OptionalString("device"), a.OptionalString("id"), a.OptionalBool("force") ?? false);
            return Empty;
        });
        table.Add("blockdev-close-tray", (c, a, _) =>
        {
            c.Graph.CloseTray(a.OptionalString("device"), a.OptionalString("id"));
            return Empty;
        });
    }

    private static readonly ValueTask<JsonNode?> Empty = ValueTask.FromResult<JsonNode?>(null);

    private static ValueTask<JsonNode?> SetIoThrottle(QmpCommandContext context, JsonObject arguments, CancellationToken cancellationToken)
    {
        context.Graph.SetIoThrottle(arguments.OptionalString("device"), arguments.OptionalString("id"), ReadThrottleConfig(arguments),
            arguments.OptionalString("group"));
        return Empty;
    }

    /// <summary>
    /// <c>BlockIOThrottle</c>'s limits: the six averages (required), and the optional bursts, burst lengths (1 when
    /// omitted) and <c>iops_size</c>.
    /// </summary>
    private static ThrottleConfig ReadThrottleConfig(JsonObject a) => new()
    {
        BpsTotal = Limit(a, "bps"),
        BpsRead = Limit(a, "bps_rd"),
        BpsWrite = Limit(a, "bps_wr"),
        IopsTotal = Limit(a, "iops"),
        IopsRead = Limit(a, "iops_rd"),
        IopsWrite = Limit(a, "iops_wr"),
        IopsSize = a.OptionalInt64("iops_size") ?? 0,
    };

    private static ThrottleLimit Limit(JsonObject a, string name) =>
        new(a.RequiredInt64(name), a.OptionalInt64(name + "_max") ?? 0, a.OptionalInt64(name + "_max_length") ?? 1);
}
