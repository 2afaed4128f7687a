using System.Text;
using Block.Graph;

namespace Block.Fuzz.Targets;

/// <summary><c>json:{…}</c> file names, with dotted members expanded, through the typed parser.</summary>
public sealed class JsonFilenameTarget : IFuzzTarget
{
    private static readonly BlockGraph s_graph = new();

    /// <inheritdoc />
    public string Name => "json-filename";

    /// <inheritdoc />
    public void Run(ReadOnlySpan<byte> input) => s_graph.Parser.ParseJsonFilename("json:" + Encoding.UTF8.GetString(input));
}
