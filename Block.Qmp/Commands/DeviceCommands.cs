using System.Text.Json.Nodes;
using Block.Qapi;
using Block.Throttle;

namespace Block.Qmp.Commands;

/// <summary>The schema's device commands (throttling, trays, removable media, <c>block_passwd</c>, <c>cont</c> after an error stop), each decoding its arguments and calling the library.</summary>
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
        table.Add("x-blockdev-remove-medium", RemoveMediumAsync);
        table.Add("x-blockdev-insert-medium", InsertMediumAsync);
        // QEMU 7.2's stable names take the device's qdev id only, so they are commands of their own, not aliases.
        table.Add("blockdev-remove-medium", RemoveMediumAsync);
        table.Add("blockdev-insert-medium", InsertMediumAsync);
        table.Add("blockdev-change-medium", ChangeMediumAsync);
        table.Add("eject", EjectAsync);
        table.Add("block_passwd", SetPasswordAsync);
        table.Add("cont", (c, _, _) =>
        {
            c.Graph.Continue();
            return Empty;
        });
    }

    private static async ValueTask<JsonNode?> SetPasswordAsync(QmpCommandContext context, JsonObject arguments, CancellationToken cancellationToken)
    {
        await context.Graph.SetPasswordAsync(arguments.OptionalString("device"), arguments.OptionalString("node-name"),
            arguments.RequiredString("password"), cancellationToken).ConfigureAwait(false);
        return null;
    }

    private static async ValueTask<JsonNode?> RemoveMediumAsync(QmpCommandContext context, JsonObject arguments, CancellationToken cancellationToken)
    {
        await context.Graph.RemoveMediumAsync(arguments.OptionalString("device"), arguments.OptionalString("id")).ConfigureAwait(false);
        return null;
    }

    private static async ValueTask<JsonNode?> InsertMediumAsync(QmpCommandContext context, JsonObject arguments, CancellationToken cancellationToken)
    {
        await context.Graph.InsertMediumAsync(arguments.OptionalString("device"), arguments.OptionalString("id"),
            arguments.RequiredString("node-name")).ConfigureAwait(false);
        return null;
    }

    private static async ValueTask<JsonNode?> ChangeMediumAsync(QmpCommandContext context, JsonObject arguments, CancellationToken cancellationToken)
    {
        // The schema has checked the value already.
        var mode = arguments.OptionalString("read-only-mode") is { } m && QapiEnum<BlockdevChangeReadOnlyMode>.TryParse(m, out var parsed)
            ? parsed
            : BlockdevChangeReadOnlyMode.Retain;
        await context.Graph.ChangeMediumAsync(arguments.OptionalString("device"), arguments.OptionalString("id"),
            arguments.RequiredString("filename"), arguments.OptionalString("format"), mode, arguments.OptionalBool("force") ?? false,
            cancellationToken).ConfigureAwait(false);
        return null;
    }

    private static async ValueTask<JsonNode?> EjectAsync(QmpCommandContext context, JsonObject arguments, CancellationToken cancellationToken)
    {
        await context.Graph.EjectAsync(arguments.OptionalString("device"), arguments.OptionalString("id"),
            arguments.OptionalBool("force") ?? false).ConfigureAwait(false);
        return null;
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
