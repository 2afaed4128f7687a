using System.Text.Json.Nodes;
using Block.Graph;
using Block.TestSupport;

namespace Block.Qcow2.Tests.Graph;

/// <summary>
/// Runs one QMP session on qemu-storage-daemon 7.2 and the same commands on a library graph, over the same files at
/// the same paths (so that file names recorded in headers are equal): the images as they are before the run are kept,
/// QSD runs, its results are moved to <c>name.qsd</c>, the originals come back, and the library runs.
/// </summary>
internal sealed class QsdScenario
{
    private readonly TempDirectory _dir;
    private readonly List<string> _blockdevs = [];
    private readonly List<string> _qsdArguments = [];
    private readonly List<Step> _steps = [];
    private readonly List<string> _files = [];
    private Func<BlockGraph, Task>? _ourSetup;

    public QsdScenario(TempDirectory dir) => _dir = dir;

    /// <summary>A <c>--blockdev</c> in JSON, given to QSD on its command line and to the graph with AddNodeAsync.</summary>
    public QsdScenario Blockdev(string json)
    {
        _blockdevs.Add(json);
        return this;
    }

    /// <summary>
    /// What stands for a device on each side: more QSD arguments (an NBD export on a node, say) and what the graph
    /// does after its nodes are added (a backend on that node).
    /// </summary>
    public QsdScenario Device(IEnumerable<string> qsdArguments, Func<BlockGraph, Task> ourSetup)
    {
        _qsdArguments.AddRange(qsdArguments);
        _ourSetup = ourSetup;
        return this;
    }

    /// <summary>A command of the session.</summary>
    public QsdScenario Command(string command, JsonObject? args = null)
    {
        _steps.Add(new Step(command, args, null, null));
        return this;
    }

    /// <summary>Guest I/O (or anything else) between commands: <paramref name="onQsd"/> while QSD runs, <paramref name="onOurs"/> on the graph.</summary>
    public QsdScenario Do(Func<Task> onQsd, Func<BlockGraph, Task> onOurs)
    {
        _steps.Add(new Step(null, null, onQsd, onOurs));
        return this;
    }

    /// <summary>Waits until the session has seen <paramref name="name"/> as often as it has been waited for so far (once more).</summary>
    public QsdScenario WaitEvent(string name)
    {
        int count = _steps.Count(s => s.WaitEvent == name) + 1;
        _steps.Add(new Step(null, null, null, null, name, count));
        return this;
    }

    /// <summary>
    /// Runs <paramref name="command"/> on each side until <paramref name="until"/> holds for its <c>return</c> (the
    /// replies are not recorded): waits for a state both sides reach at their own pace, such as a job's first chunk.
    /// </summary>
    public QsdScenario Poll(string command, Func<JsonNode?, bool> until)
    {
        _steps.Add(new Step(command, null, null, null, null, 0, until));
        return this;
    }

    private sealed record Step(string? Command, JsonObject? Args, Func<Task>? OnQsd, Func<BlockGraph, Task>? OnOurs,
        string? WaitEvent = null, int WaitCount = 0, Func<JsonNode?, bool>? Until = null);

    private IEnumerable<Step> Commands => _steps.Where(s => s.Command != null && s.Until is null);

    /// <summary>A file (by name in the directory) whose result is compared; it may not exist before the run.</summary>
    public QsdScenario File(string name)
    {
        _files.Add(name);
        return this;
    }

    /// <summary>QSD's replies and ours, command by command.</summary>
    public List<JsonObject> QsdReplies { get; } = [];

    /// <summary>The library's replies.</summary>
    public List<JsonObject> OurReplies { get; } = [];

    /// <summary>QSD's events in order, without timestamps and without 7.2's <c>JOB_STATUS_CHANGE</c> (the seed has none).</summary>
    public List<JsonObject> QsdEvents { get; } = [];

    /// <summary>The library's events in order, without timestamps.</summary>
    public List<JsonObject> OurEvents { get; } = [];

    private static readonly TimeSpan WaitLimit = TimeSpan.FromSeconds(60);

    /// <summary>What QSD left in <paramref name="name"/>.</summary>
    public string QsdFile(string name) => _dir.File(name) + ".qsd";

    public async Task RunAsync(Func<BlockGraph, Task>? afterCommands = null)
    {
        foreach (var f in _files)
        {
            if (System.IO.File.Exists(_dir.File(f)))
                System.IO.File.Copy(_dir.File(f), _dir.File(f) + ".orig", overwrite: true);
        }

        var args = _blockdevs.SelectMany(b => new[] { "--blockdev", b }).Concat(_qsdArguments).ToArray();
        await using (var qsd = await QemuStorageDaemon.StartAsync(args))
        {
            foreach (var step in _steps)
            {
                if (step.Until != null)
                    await PollAsync(async () => (await qsd.ExecuteAsync(step.Command!, step.Args))["return"], step.Until);
                else if (step.Command != null)
                    QsdReplies.Add(await qsd.ExecuteAsync(step.Command, step.Args));
                else if (step.WaitEvent != null)
                    await PollAsync(() => Task.FromResult<JsonNode?>(qsd.Qmp.Events.Count(e => (string?)e["event"] == step.WaitEvent)),
                        n => n!.GetValue<int>() >= step.WaitCount);
                else
                    await step.OnQsd!();
            }
            Assert.True(await qsd.QuitAsync(), $"QSD did not quit: {qsd.Stderr}");
            foreach (var e in qsd.Qmp.TakeEvents())
            {
                if ((string?)e["event"] != "JOB_STATUS_CHANGE")
                    QsdEvents.Add(WithoutTimestamp(e));
            }
        }

        foreach (var f in _files)
        {
            string path = _dir.File(f);
            if (System.IO.File.Exists(path))
                System.IO.File.Move(path, path + ".qsd", overwrite: true);
            if (System.IO.File.Exists(path + ".orig"))
                System.IO.File.Move(path + ".orig", path);
        }

        var graph = Qcow2Images.NewGraph();
        graph.EventRaised += e =>
        {
            lock (OurEvents)
                OurEvents.Add(new JsonObject { ["event"] = e.Name, ["data"] = e.ToData() });
        };
        await using (graph)
        await using (var server = new Block.Qmp.QmpServer(graph))
        {
            foreach (var b in _blockdevs)
                await graph.AddNodeAsync(graph.Parser.ParseJson(b));
            if (_ourSetup != null)
                await _ourSetup(graph);
            foreach (var step in _steps)
            {
                if (step.Until != null)
                    await PollAsync(async () => (await ExecuteAsync(server, step.Command!, step.Args))["return"], step.Until);
                else if (step.Command != null)
                    OurReplies.Add(await ExecuteAsync(server, step.Command, step.Args));
                else if (step.WaitEvent != null)
                    await PollAsync(() => Task.FromResult<JsonNode?>(CountOurEvents(step.WaitEvent)), n => n!.GetValue<int>() >= step.WaitCount);
                else
                    await step.OnOurs!(graph);
            }
            if (afterCommands != null)
                await afterCommands(graph);
        }
    }

    /// <summary>
    /// A command through the QMP adapter's command table, as a client would send it (arguments checked against the
    /// schema, 7.2's names as aliases), with the outcome in QMP's reply shape.
    /// </summary>
    private static async Task<JsonObject> ExecuteAsync(Block.Qmp.QmpServer server, string command, JsonObject? args)
    {
        try
        {
            var result = await server.ExecuteAsync(command, (JsonObject?)args?.DeepClone());
            return new JsonObject { ["return"] = result ?? new JsonObject() };
        }
        catch (BlockException e)
        {
            return new JsonObject { ["error"] = new JsonObject { ["class"] = e.ErrorClass.ToString(), ["desc"] = e.Message } };
        }
    }

    private int CountOurEvents(string name)
    {
        lock (OurEvents)
            return OurEvents.Count(e => (string?)e["event"] == name);
    }

    private static JsonObject WithoutTimestamp(JsonObject e)
    {
        var copy = e.DeepClone().AsObject();
        copy.Remove("timestamp");
        return copy;
    }

    /// <summary>Asks again until <paramref name="until"/> holds; a state never reached fails the test after a minute.</summary>
    private static async Task PollAsync(Func<Task<JsonNode?>> ask, Func<JsonNode?, bool> until)
    {
        var deadline = DateTime.UtcNow + WaitLimit;
        while (true)
        {
            var value = await ask();
            if (until(value))
                return;
            Assert.True(DateTime.UtcNow < deadline, $"state not reached: {value?.ToJsonString()}");
            await Task.Delay(10);
        }
    }

    /// <summary>Asserts that both sides sent the same events in the same order, with the same data.</summary>
    public void AssertSameEvents()
    {
        List<JsonObject> ours;
        lock (OurEvents)
            ours = [.. OurEvents];
        bool same = QsdEvents.Count == ours.Count && QsdEvents.Zip(ours).All(p => JsonNode.DeepEquals(p.First, p.Second));
        string expected = string.Join("\n", QsdEvents.Select(e => e.ToJsonString()));
        string actual = string.Join("\n", ours.Select(e => e.ToJsonString()));
        Assert.True(same, $"events differ\n  QSD:\n{expected}\n  ours:\n{actual}");
    }

    /// <summary>Asserts that every reply is the same, command by command (error class and text included).</summary>
    public void AssertSameReplies()
    {
        var commands = Commands.ToList();
        Assert.Equal(QsdReplies.Count, OurReplies.Count);
        var mismatches = new List<string>();
        for (int i = 0; i < QsdReplies.Count; i++)
        {
            var expected = QsdReplies[i].DeepClone().AsObject();
            expected.Remove("id");
            if (commands[i].Command == "query-block-jobs" && expected["return"] is JsonArray jobs)
            {
                // QEMU 2.12's job state members, which the seed's BlockJobInfo lacks.
                foreach (var job in jobs.OfType<JsonObject>())
                {
                    job.Remove("status");
                    job.Remove("auto-finalize");
                    job.Remove("auto-dismiss");
                }
            }
            if (!JsonNode.DeepEquals(expected, OurReplies[i]))
                mismatches.Add($"{commands[i].Command} {commands[i].Args?.ToJsonString()}\n  QSD:  {expected.ToJsonString()}\n  ours: {OurReplies[i].ToJsonString()}");
        }
        Assert.True(mismatches.Count == 0, string.Join("\n", mismatches));
    }
}
