using System.Text.Json;
using System.Text.Json.Nodes;
using Block.Qapi;

namespace Block.Qmp.Commands;

/// <summary>
/// The schema's block job commands: starting jobs (<c>block-stream</c>, <c>block-commit</c>), controlling them by id
/// (<c>block-job-set-speed</c>, <c>-pause</c>, <c>-resume</c>, <c>-cancel</c>, <c>-complete</c>) and listing them
/// (<c>query-block-jobs</c>); each decodes its arguments and calls the <see cref="Graph.BlockGraph"/> or
/// <see cref="Jobs.BlockJob"/> method that does the work.
/// </summary>
internal static class JobCommands
{
    public static void Register(QmpCommandTable table)
    {
        table.Add("query-block-jobs", (c, _, _) =>
            ValueTask.FromResult(JsonSerializer.SerializeToNode(c.Graph.QueryBlockJobs(), QapiJsonContext.Default.IReadOnlyListBlockJobInfo)));
        table.Add("block-stream", StreamAsync);
        table.Add("block-commit", CommitAsync);
        table.Add("block-job-set-speed", (c, a, _) => Run(() => c.Graph.FindJob(a.RequiredString("device")).SetSpeed(a.RequiredInt64("speed"))));
        table.Add("block-job-pause", (c, a, _) => Run(() => c.Graph.FindJob(a.RequiredString("device")).Pause()));
        table.Add("block-job-resume", (c, a, _) => Run(() => c.Graph.FindJob(a.RequiredString("device")).Resume()));
        table.Add("block-job-cancel", (c, a, _) =>
            Run(() => c.Graph.FindJob(a.RequiredString("device")).Cancel(a.OptionalBool("force") ?? false)));
        table.Add("block-job-complete", (c, a, _) => Run(() => c.Graph.FindJob(a.RequiredString("device")).Complete()));
    }

    private static ValueTask<JsonNode?> Run(Action action)
    {
        action();
        return ValueTask.FromResult<JsonNode?>(null);
    }

    private static async ValueTask<JsonNode?> StreamAsync(QmpCommandContext context, JsonObject arguments, CancellationToken cancellationToken)
    {
        await context.Graph.StreamAsync(arguments.OptionalString("job-id"), arguments.RequiredString("device"),
            arguments.OptionalString("base"), arguments.OptionalString("base-node"), arguments.OptionalString("backing-file"),
            arguments.OptionalInt64("speed") ?? 0, OnError(arguments, "on-error")).ConfigureAwait(false);
        return null;
    }

    private static async ValueTask<JsonNode?> CommitAsync(QmpCommandContext context, JsonObject arguments, CancellationToken cancellationToken)
    {
        await context.Graph.CommitAsync(arguments.OptionalString("job-id"), arguments.RequiredString("device"),
            arguments.OptionalString("base"), arguments.OptionalString("top"), arguments.OptionalString("backing-file"),
            arguments.OptionalInt64("speed") ?? 0).ConfigureAwait(false);
        return null;
    }

    /// <summary>An error policy member (the schema has checked its value).</summary>
    internal static BlockdevOnError OnError(JsonObject arguments, string name) =>
        arguments.OptionalString(name) is { } s && QapiEnum<BlockdevOnError>.TryParse(s, out var policy) ? policy : BlockdevOnError.Report;
}
