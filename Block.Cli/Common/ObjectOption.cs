using Block.Graph;
using Block.Options;

namespace Block.Cli.Common;

/// <summary>QEMU's <c>--object TYPE,id=…,…</c>: the object types <c>blk</c> knows (secrets, x509 TLS credentials).</summary>
internal static class ObjectOption
{
    /// <summary>Adds the object described by <paramref name="text"/> to <paramref name="graph"/>.</summary>
    /// <exception cref="BlockOptionsException">An unknown type or bad properties.</exception>
    public static void Add(BlockGraph graph, string text)
    {
        // QSD takes JSON objects too ({"qom-type": "secret", "id": …}).
        var reader = text.TrimStart().StartsWith('{')
            ? new OptionsReader(BlockdevOptionsParser.JsonFilenameObject("json:" + text), keyval: false)
            : new OptionsReader(KeyValueParser.Parse(text, impliedKey: "qom-type"), keyval: true);
        string type = reader.String("qom-type") ?? throw new BlockOptionsException("Parameter 'qom-type' is missing");
        if (type is not ("secret" or "throttle-group" or "tls-creds-x509"))
            throw new BlockOptionsException($"Parameter 'qom-type' does not accept value '{type}'");
        string id = reader.String("id") ?? throw new BlockOptionsException("Parameter 'id' is missing");
        // QEMU's objects share one namespace (/objects), whatever their type.
        if (graph.Secrets.Find(id) is not null || graph.TlsCredentials.Find(id) is not null || graph.ThrottleGroups.IsObject(id))
            throw new BlockException(Errno.EEXIST, $"attempt to add duplicate property '{id}' to object (type 'container')");
        if (type == "throttle-group")
        {
            graph.ThrottleGroups.AddObject(id, ReadThrottleLimits(reader));
            return;
        }
        if (type == "tls-creds-x509")
        {
            AddTlsCredentials(graph, reader, id);
            return;
        }
        string? data = reader.String("data");
        string? file = reader.String("file");
        string? format = reader.String("format");
        reader.Skip("keyid");
        reader.Skip("iv");
        reader.Finish();
        graph.Secrets.Add(id, data, file, format);
    }

    /// <summary>
    /// A throttle group's limits: <c>limits.*</c> (QAPI <c>ThrottleLimits</c>) or the older <c>x-*</c> properties,
    /// one name per bucket (<c>bps-total</c>, <c>iops-read-max</c>, <c>bps-write-max-length</c>…) and <c>iops-size</c>.
    /// </summary>
    private static Throttle.ThrottleConfig ReadThrottleLimits(OptionsReader reader)
    {
        var limits = reader.Object("limits");
        long Read(string key) => limits?.Int(key) ?? reader.Int("x-" + key) ?? 0;
        long ReadLength(string key) => limits?.Int(key) ?? reader.Int("x-" + key) ?? 1;
        Throttle.ThrottleLimit Bucket(string name) => new(Read(name), Read(name + "-max"), ReadLength(name + "-max-length"));
        var config = new Throttle.ThrottleConfig
        {
            BpsTotal = Bucket("bps-total"),
            BpsRead = Bucket("bps-read"),
            BpsWrite = Bucket("bps-write"),
            IopsTotal = Bucket("iops-total"),
            IopsRead = Bucket("iops-read"),
            IopsWrite = Bucket("iops-write"),
            IopsSize = Read("iops-size"),
        };
        limits?.Finish();
        reader.Finish();
        return config;
    }

    /// <summary><c>tls-creds-x509,id=…,dir=…[,endpoint=client|server][,verify-peer=on|off]</c>.</summary>
    private static void AddTlsCredentials(BlockGraph graph, OptionsReader reader, string id)
    {
        string dir = reader.String("dir") ?? throw new BlockOptionsException("Missing 'dir' property value");
        string endpoint = reader.String("endpoint") ?? "client";
        if (endpoint is not ("client" or "server"))
            throw new BlockOptionsException($"Parameter 'endpoint' does not accept value '{endpoint}'");
        bool verifyPeer = reader.Bool("verify-peer") ?? true;
        reader.Skip("priority");
        reader.Skip("sanity-check");
        reader.Finish();
        graph.TlsCredentials.Add(new Block.Secrets.TlsCredentials(id, dir, endpoint == "server", verifyPeer));
    }
}
