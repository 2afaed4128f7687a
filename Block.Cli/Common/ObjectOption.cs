using Block.Graph;
using Block.Options;

namespace Block.Cli.Common;

/// <summary>QEMU's <c>--object TYPE,id=…,…</c>: the object types <c>blk</c> knows (secrets).</summary>
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
        if (type != "secret")
            throw new BlockOptionsException($"Parameter 'qom-type' does not accept value '{type}'");
        string id = reader.String("id") ?? throw new BlockOptionsException("Parameter 'id' is missing");
        string? data = reader.String("data");
        string? file = reader.String("file");
        string? format = reader.String("format");
        reader.Skip("keyid");
        reader.Skip("iv");
        reader.Finish();
        graph.Secrets.Add(id, data, file, format);
    }
}
