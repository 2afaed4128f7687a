using System.Text.Json.Nodes;
using Block.TestSupport;

namespace Block.Cli.Tests.Serve;

/// <summary>
/// One QMP session run on qemu-system-x86_64 7.2 (a stopped q35 machine with real device models) and on
/// <c>blk serve</c>, both given the same <c>-drive</c>/<c>-device</c> arguments (<c>--drive</c>/<c>--device</c> for
/// blk), over the same image files: QEMU first, then blk. Generated node names (<c>#blockNNN</c>) are masked, and
/// members where QEMU 2.8 and 7.2 disagree are left out (<c>encryption_key_missing</c>, which 7.2 dropped, and
/// <c>qdev</c>, which 2.10 added).
/// </summary>
internal sealed class DeviceScenario
{
    private readonly List<(string Option, string Value)> _arguments = [];
    private readonly List<(string Command, JsonObject? Args)> _commands = [];
    private readonly HashSet<string> _ignored = new(StringComparer.Ordinal) { "encryption_key_missing", "qdev" };

    /// <summary>A <c>-drive</c> (<c>--drive</c>).</summary>
    public DeviceScenario Drive(string value)
    {
        _arguments.Add(("drive", value));
        return this;
    }

    /// <summary>An <c>-object</c> (<c>--object</c>).</summary>
    public DeviceScenario Object(string value)
    {
        _arguments.Add(("object", value));
        return this;
    }

    /// <summary>A <c>-device</c> (<c>--device</c>).</summary>
    public DeviceScenario Device(string value)
    {
        _arguments.Add(("device", value));
        return this;
    }

    /// <summary>A command of the session.</summary>
    public DeviceScenario Command(string command, JsonObject? args = null)
    {
        _commands.Add((command, args));
        return this;
    }

    /// <summary>Leaves members out of every reply and event (members one side has and the other does not, by design).</summary>
    public DeviceScenario Ignoring(params string[] members)
    {
        _ignored.UnionWith(members);
        return this;
    }

    /// <summary>QEMU's replies, command by command.</summary>
    public List<JsonObject> QemuReplies { get; } = [];

    /// <summary>blk serve's replies.</summary>
    public List<JsonObject> OurReplies { get; } = [];

    /// <summary>The events QEMU sent during the session, without timestamps.</summary>
    public List<JsonObject> QemuEvents { get; } = [];

    /// <summary>The events blk serve sent.</summary>
    public List<JsonObject> OurEvents { get; } = [];

    public async Task RunAsync()
    {
        await using (var qemu = await QemuSystem.StartAsync([.. _arguments.SelectMany(a => new[] { "-" + a.Option, a.Value })]))
        {
            foreach (var (command, args) in _commands)
                QemuReplies.Add(Normalize(await qemu.ExecuteAsync(command, (JsonObject?)args?.DeepClone())));
            // An event goes out before the reply of the command that raised it, so all of them are here now.
            QemuEvents.AddRange(qemu.Qmp.TakeEvents().Select(Normalize));
        }
        await using var blk = await BlkServe.StartAsync([.. _arguments.SelectMany(a => new[] { "--" + a.Option, a.Value })]);
        foreach (var (command, args) in _commands)
            OurReplies.Add(Normalize(await blk.ExecuteAsync(command, (JsonObject?)args?.DeepClone())));
        OurEvents.AddRange(blk.Qmp.TakeEvents().Select(Normalize));
    }

    /// <summary>Asserts that every reply is the same (error class and text included).</summary>
    public void AssertSameReplies()
    {
        Assert.Equal(QemuReplies.Count, OurReplies.Count);
        var mismatches = new List<string>();
        for (int i = 0; i < QemuReplies.Count; i++)
        {
            if (!JsonNode.DeepEquals(QemuReplies[i], OurReplies[i]))
                mismatches.Add($"{_commands[i].Command} {_commands[i].Args?.ToJsonString()}\n  QEMU: {QemuReplies[i].ToJsonString()}\n  ours: {OurReplies[i].ToJsonString()}");
        }
        Assert.True(mismatches.Count == 0, string.Join("\n", mismatches));
        Assert.Equal(string.Join("\n", QemuEvents.Select(e => e.ToJsonString())), string.Join("\n", OurEvents.Select(e => e.ToJsonString())));
    }

    private JsonObject Normalize(JsonObject reply)
    {
        var copy = reply.DeepClone().AsObject();
        copy.Remove("id");
        copy.Remove("timestamp");
        Mask(copy);
        return copy;
    }

    private void Mask(JsonNode? node)
    {
        switch (node)
        {
            case JsonObject o:
                foreach (var key in o.Select(p => p.Key).ToList())
                {
                    if (_ignored.Contains(key))
                        o.Remove(key);
                    else if (key == "node-name" && (string?)o[key] is { } name && name.StartsWith("#block", StringComparison.Ordinal))
                        o[key] = "#block";
                    else
                        Mask(o[key]);
                }
                break;
            case JsonArray a:
                foreach (var item in a)
                    Mask(item);
                break;
        }
    }
}
